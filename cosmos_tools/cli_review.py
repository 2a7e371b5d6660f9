"""``cosmos-tools review``: a static page (and a contact sheet) comparing runs side by side. Needs no connection."""

from __future__ import annotations

from pathlib import Path

import click

from .config import load_config


@click.command("review")
@click.argument("run_ids", nargs=-1)
@click.option("--sweep", metavar="NAME", help="The latest run of each variant of inputs/sweeps/NAME.json.")
@click.option("--shot", metavar="SHOT", help="Every run of this shot.")
@click.option("--last", type=click.IntRange(min=1), metavar="N", help="The last N runs of the history.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the page here (default: "
              "outputs/review/<selection>.html); the contact sheet goes beside it (.png).")
@click.option("--open", "open_page", is_flag=True, help="Open the page in the default browser.")
@click.option("--sheet-only", is_flag=True, help="Write only the contact sheet image.")
def review_cmd(run_ids: tuple[str, ...], sweep: str | None, shot: str | None, last: int | None, out: Path | None,
               open_page: bool, sheet_only: bool) -> None:
    """Compare runs side by side: one static HTML page under outputs/review/ and a contact sheet PNG beside it.

    The page shows the shot's source and control videos, then every run's output (4K upscales linked),
    with one Play/Pause, a shared scrubber, frame steps with the arrow keys and loop; each run's status,
    duration, seed and the values that differ between the runs (shared values once at the top); failed
    and blocked runs show their verdict and last log lines. It works from file:// and from a copied or moved
    outputs/ folder, and makes no network request. Give RUN_ID... or --sweep, --shot or --last.
    """
    from .review import select
    from .review_page import write_review
    from .sheet import sheet_path

    cfg = load_config()
    title, chosen, notes = select(cfg, run_ids, sweep=sweep, shot=shot, last=last)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    written = write_review(cfg, chosen, out, title=title, notes=notes, page=not sheet_only)
    if not sheet_only:
        click.echo(f"page:  {written}")
        click.echo(f"sheet: {sheet_path(written)}")
    else:
        click.echo(f"sheet: {written}")
    if open_page:
        import webbrowser

        if not webbrowser.open(written.as_uri()):
            click.echo(f"note: no browser to open; open {written.as_uri()} yourself", err=True)


COMMANDS = [review_cmd]
