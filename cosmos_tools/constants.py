"""Facts shared by several modules, defined once: Cosmos-Transfer1's frame chunk and resolution buckets, and
the formats cosmos-tools writes (UTC time stamps, JSON files)."""

from __future__ import annotations

# cosmos-transfer1 generates video in chunks of this many frames; shorter inputs are padded (and come out noisy).
CHUNK_FRAMES = 121
# cosmos-transfer1 issue #150: the 4K upscaler fails on the second chunk, so it takes at most one.
MAX_UPSCALE_FRAMES = CHUNK_FRAMES

# The sizes cosmos-transfer1 resizes every input to, by aspect ratio (it picks the closest ratio, no cropping).
RESOLUTION_BUCKETS = {"16:9": (1280, 704), "4:3": (960, 704), "1:1": (960, 960), "3:4": (704, 960),
                      "9:16": (704, 1280)}

# UTC time stamps in notes/run_history.log, shot.json and job listings: 2026-11-22T14:30:00Z.
UTC_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# How JSON cosmos-tools writes is laid out (see fsutil.json_text): readable, unicode kept.
JSON_INDENT = 2

# What a model logs when its guardrail blocks a job: Transfer1's marker, then Transfer2.5's (which, with its
# default keep-going, may still exit 0 without a video). remote/job_state.sh greps for the same two lines.
GUARDRAIL_MARKERS = ("GUARDRAIL BLOCKED", "Guardrail blocked generation")
