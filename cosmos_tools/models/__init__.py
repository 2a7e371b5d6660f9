"""Model profiles: everything that differs between the Cosmos models cosmos-tools drives, one module each.

A prompt runs under the profile its ``"_model"`` key names (a comment key: never sent to Cosmos), else
under MODEL from config.sh. A profile module provides:

- ``NAME``, ``VIDEO_KEY`` (the spec key of the input video), ``PROMPT_TEMPLATE`` / ``USER_TEMPLATE`` (what
  ``new_prompt`` renders), ``HAS_UPSCALER``;
- ``checker(spec, cfg)``: a ``validate.SpecChecker`` with the model's rules;
- ``run_spec(prompt, spec_path)``: the spec file the model reads, from the prompt as written;
- ``project_spec(spec, spec_path)``: a spec as a run used it, with project-relative paths again (rerun uploads);
- ``command(cfg, prompt, paths, num_gpu)`` and ``env(cfg, num_gpu)``: what runs inside the container;
- ``BATCH_FLAG``: the flag that hands a batch job its JSONL (batch.py; "": the JSONL is the input spec itself).

REMOTE_DIR and DOCKER_IMAGE belong to one model's checkout and image, so a run needs its prompt's profile to be
MODEL (``for_run``); ``check`` and ``render`` follow the prompt's own profile.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..config import MODELS
from ..errors import UserError

MODEL_KEY = "_model"
_MODULES = {"transfer1-7b": "transfer1", "transfer2.5-2b": "transfer25"}


def profile(name: str) -> ModuleType:
    """The profile module of model ``name`` (one of config.MODELS)."""
    return importlib.import_module(f".{_MODULES[name]}", __name__)


def of_prompt(prompt: dict, cfg) -> ModuleType:
    """The profile a prompt is written for: its ``_model`` key, else MODEL."""
    name = prompt.get(MODEL_KEY, cfg["MODEL"])
    if name not in MODELS:
        raise UserError(f"{MODEL_KEY} {name!r} is not a model cosmos-tools knows; use one of {', '.join(MODELS)}")
    return profile(name)


def mismatch(name: str, cfg) -> str:
    """Why a prompt of model ``name`` cannot run with this config, and the fix."""
    return (f"this prompt is for {name} but MODEL is {cfg['MODEL']} ({cfg.sources['MODEL']}), whose checkout "
            f"(REMOTE_DIR) and image (DOCKER_IMAGE) the run would use; run it with MODEL={name} and that model's "
            "REMOTE_DIR and DOCKER_IMAGE")


def for_run(prompt: dict, cfg) -> ModuleType:
    """The profile of a prompt that is about to run: refused when it is not MODEL's."""
    chosen = of_prompt(prompt, cfg)
    if chosen.NAME != cfg["MODEL"]:
        raise UserError(mismatch(chosen.NAME, cfg))
    return chosen
