"""``cosmos-tools critique``: score runs with a video critic on the GPU box (critic.py). Thin: select, call, print."""

from __future__ import annotations

import sys

import click

from .cli_remote import GPUS, _config, interruptible


@click.command("critique")
@click.argument("run_ids", nargs=-1)
@click.option("--sweep", metavar="NAME", help="The latest run of each variant of inputs/sweeps/NAME.json.")
@click.option("--trials", type=click.IntRange(min=1), default=None, metavar="N",
              help="Answers per video (default CRITIC_TRIALS); the score is their mean.")
@GPUS
@click.option("--json", "as_json", is_flag=True, help="Print the ranking as JSON (each run's critic.json with its "
              "rank, best first); the job's live log goes to stderr.")
@interruptible
def critique_cmd(run_ids: tuple[str, ...], sweep: str | None, trials: int | None, num_gpu: int | None,
                 as_json: bool) -> None:
    """Score runs with the video critic (CRITIC: cosmos3 or reason1) on the GPU box, as one queued job.

    Each scored run gets outputs/runs/RUN_ID/critic.json: a score from 0 to 1, the critic's answer and
    reasoning, the model, the prompt and every trial's text. A run whose output.mp4 is not here or not on
    the box is skipped with one line (exit 1 at the end); the others are scored. The ranking ends the output.
    The score is advisory: it labels and sorts (review page, history --json, show); nothing is deleted or
    hidden because of it. Give RUN_ID... or --sweep NAME.
    """
    from .critic import critique, finish
    from .errors import UserError
    from .review import select

    if bool(run_ids) == (sweep is not None):
        raise UserError("give the runs to score: RUN_ID... or --sweep NAME (one of them)")
    cfg = _config(num_gpu)
    _, chosen, notes = select(cfg, run_ids, sweep=sweep)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    done = critique(cfg, chosen, name=f"critique-{sweep}" if sweep else "critique", trials=trials,
                    echo=_echo_stderr if as_json else None)
    finish(cfg, done, as_json=as_json)


def _echo_stderr(data: bytes) -> None:
    sys.stderr.buffer.write(data)
    sys.stderr.buffer.flush()


COMMANDS = [critique_cmd]
