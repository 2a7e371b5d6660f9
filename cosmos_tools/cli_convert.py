"""The ``convert`` command: a render folder of PNG sequences into inputs/videos/<name>/."""

from __future__ import annotations

import json
import sys

import click


@click.command("convert")
@click.argument("input_dir", type=click.Path(file_okay=False, path_type=str))
@click.argument("output_name")
@click.argument("frame_count", required=False, type=int)
@click.option("--fps", type=click.IntRange(1, 1000), default=None,
              help="Frames per second of the MP4s (default: FPS from config.sh, 24).")
@click.option("--fit", is_flag=True,
              help="Scale (and pad with edge pixels) to the closest Cosmos bucket: 1280x704, 960x704, 960x960, "
                   "704x960, 704x1280. Masks and depth use nearest-neighbour.")
@click.option("--depth-near-bright", is_flag=True,
              help="The depth render is already brighter-is-nearer; do not invert it.")
@click.option("--pass", "passes", multiple=True, metavar="PASS=NAME",
              help="Use the sequence NAME (Pz, alley.objid, depth/ ...) for PASS (color, depth or segmentation), "
                   "whatever the names say. Repeat for several passes.")
@click.option("--force", is_flag=True, help="Encode again even if the sources have not changed.")
@click.option("--json", "as_json", is_flag=True, help="Print shot.json's content on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary (warnings still shown).")
def convert(input_dir: str, output_name: str, frame_count: int | None, fps: int | None, fit: bool,
            depth_near_bright: bool, passes: tuple[str, ...], force: bool, as_json: bool, quiet: bool) -> None:
    """Convert a render folder of color/depth/segmentation PNG sequences into a shot folder.

    Sequences may use any padding and start frame (color.1001.png, rgb_00001.png, Z.7.png ...), in the
    folder or one level of pass subfolders (color/, depth/, seg/ ...). Pass names: color/colour/rgb/rgba/beauty;
    depth/z/Pz/zdepth/VRayZDepth; segmentation/seg/mask/matte/id/objid/Op_Id/Prim_Id/ObjectID/RenderID/
    MultiMatte/PuzzleMatte/IndexOB (see docs/convert.md); --pass maps any other. Every sequence found but not
    used is named on stderr. FRAME_COUNT keeps the first N frames.
    Output: inputs/videos/OUTPUT_NAME/{color,depth,segmentation}.mp4 and shot.json.
    """
    from pathlib import Path

    from .config import load_config
    from .convert import ConvertOptions, check_output_name, convert_shot, parse_passes

    check_output_name(output_name)
    mapping = parse_passes(passes)
    cfg = load_config()
    options = ConvertOptions(frame_count=frame_count, fps=fps or cfg.int("FPS"), fit=fit,
                             depth_near_bright=depth_near_bright, force=force, progress=not quiet, passes=mapping)
    source = Path(input_dir)
    if not source.is_absolute():
        source = Path.cwd() / source
    result = convert_shot(source, output_name, cfg.local_path("LOCAL_VIDEOS_DIR"), options,
                          notify=lambda line: click.echo(line, err=True))
    record = result.record
    if as_json:
        click.echo(json.dumps({"skipped": result.skipped, "folder": str(result.folder), **record},
                              indent=2, ensure_ascii=False))
        return
    if quiet:
        return
    files = ", ".join(f"{m}.mp4" for m in record["outputs"])
    if result.skipped:
        click.echo(f"up to date: {result.folder} ({files}); sources unchanged since {record['created']}, "
                   "--force to encode again")
        return
    psnr = record.get("color_psnr_db")
    click.echo(f"wrote {result.folder}: {files}, shot.json")
    click.echo(f"  {record['frames']} frames {record['width']}x{record['height']} at {record['fps']} fps "
               f"(source frames {record['source']['first_frame']}-{record['source']['last_frame']}) "
               f"in {record['encode_seconds']:.1f} s")
    if psnr is not None:
        click.echo(f"  color PSNR {psnr:.2f} dB against the PNGs")
    if "depth" in record:
        depth = record["depth"]
        background = ", ".join(depth["background"]) or "none"
        click.echo(f"  depth range {depth['range'][0]}-{depth['range'][1]} of {depth['source_code_max']} "
                   f"({depth['convention']}; background codes: {background})")
    sys.stdout.flush()


COMMANDS = [convert]
