"""Model profiles: everything that differs between the Cosmos models cosmos-tools drives, one module each.

A profile is a module (``transfer1``, ``transfer25``) or, where one module serves several checkpoints, one of
its ``PROFILES`` (``cosmos3``: cosmos3-nano, cosmos3-super, cosmos3-edge).

A prompt runs under the profile its ``"_model"`` key names (a comment key: never sent to Cosmos), else
under MODEL from config.sh. A profile module provides:

- ``NAME``, ``VIDEO_KEY`` (the spec key of the input video), ``PROMPT_TEMPLATE`` / ``USER_TEMPLATE`` (what
  ``new_prompt`` renders), ``HAS_UPSCALER``;
- ``checker(spec, cfg)``: a ``validate.SpecChecker`` with the model's rules;
- ``run_spec(prompt, spec_path)``: the spec file the model reads, from the prompt as written;
- ``project_spec(spec, spec_path)``: a spec as a run used it, with project-relative paths again (rerun uploads);
- ``command(cfg, prompt, paths, num_gpu)`` and ``env(cfg, num_gpu)``: what runs inside the container;
- ``BATCH_FLAG`` (profiles whose variants batch.py groups): the flag that hands a batch job its JSONL ("": the
  JSONL is the input spec itself);
- optionally ``IMAGE_PATHS`` (container folders the image provides under the /workspace mount, kept visible
  with an anonymous volume) and ``prompt_values(shot)`` (extra variables for its prompt template, from the
  shot's geometry, frames and fps).

REMOTE_DIR and DOCKER_IMAGE belong to one model's checkout and image, so a run needs its prompt's profile to be
MODEL (``for_run``); ``check`` and ``render`` follow the prompt's own profile.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..config import MODELS, REFUSED_MODELS
from ..errors import UserError

MODEL_KEY = "_model"
_MODULES = {"transfer1-7b": "transfer1", "transfer2.5-2b": "transfer25", "cosmos3-nano": "cosmos3",
            "cosmos3-super": "cosmos3", "cosmos3-edge": "cosmos3"}
Profile = Any  # a profile module, or an object of a module's PROFILES with the same attributes


def profile(name: str) -> Profile:
    """The profile of model ``name`` (one of config.MODELS)."""
    module = importlib.import_module(f".{_MODULES[name]}", __name__)
    return module.PROFILES[name] if hasattr(module, "PROFILES") else module


def of_prompt(prompt: dict, cfg) -> Profile:
    """The profile a prompt is written for: its ``_model`` key, else MODEL."""
    name = prompt.get(MODEL_KEY, cfg["MODEL"])
    if isinstance(name, str) and name in REFUSED_MODELS:
        raise UserError(f"{MODEL_KEY} {name!r} is not supported: {REFUSED_MODELS[name]}")
    if name not in MODELS:
        raise UserError(f"{MODEL_KEY} {name!r} is not a model cosmos-tools knows; use one of {', '.join(MODELS)}")
    return profile(name)


def mismatch(name: str, cfg) -> str:
    """Why a prompt of model ``name`` cannot run with this config, and the fix."""
    return (f"this prompt is for {name} but MODEL is {cfg['MODEL']} ({cfg.sources['MODEL']}), whose checkout "
            f"(REMOTE_DIR) and image (DOCKER_IMAGE) the run would use; run it with MODEL={name} and that model's "
            "REMOTE_DIR and DOCKER_IMAGE")


def for_run(prompt: dict, cfg) -> Profile:
    """The profile of a prompt that is about to run: refused when it is not MODEL's."""
    chosen = of_prompt(prompt, cfg)
    if chosen.NAME != cfg["MODEL"]:
        raise UserError(mismatch(chosen.NAME, cfg))
    return chosen
