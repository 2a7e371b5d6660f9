"""PNG render folder -> Cosmos-ready shot folder (color.mp4, depth.mp4, segmentation.mp4, shot.json)."""

from .sequences import parse_passes
from .shot import ConvertOptions, ConvertResult, check_output_name, convert_shot

__all__ = ["ConvertOptions", "ConvertResult", "check_output_name", "convert_shot", "parse_passes"]
