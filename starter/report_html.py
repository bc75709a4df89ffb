"""The campaign report as one self-contained HTML file: inline CSS and SVG charts, no
script and nothing loaded from the network, so it opens offline and can be mailed around.
Built with Jinja2 with autoescaping on: campaign names and skip reasons are user data."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from jinja2 import Environment
from markupsafe import Markup

from schemas.campaign_funnel import CampaignFunnel
from starter import report_charts

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Campaign {{ funnel.campaign_id }} · {{ funnel.name }}</title>
<style>
 body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 64rem;
        color: #222; padding: 0 1rem; }
 h1 { font-size: 1.5rem; margin-bottom: .2rem; }
 .meta { color: #666; margin-top: 0; }
 table { border-collapse: collapse; width: 100%; margin: 1rem 0 2rem; font-variant-numeric: tabular-nums; }
 th, td { border-bottom: 1px solid #ddd; padding: .35rem .5rem; text-align: right; }
 th:nth-child(-n+2), td:nth-child(-n+2), td.reasons { text-align: left; }
 tfoot td { font-weight: 600; }
 figure { margin: 0 0 2rem; }
 figure svg { width: 100%; height: auto; }
</style>
</head>
<body>
<h1>Campaign {{ funnel.campaign_id }} · {{ funnel.name }}</h1>
<p class="meta">{{ funnel.status }} · {{ funnel.enrolled }} enrolled · buckets computed
 {{ funnel.computed_at.strftime("%Y-%m-%d %H:%M UTC") if funnel.computed_at else "never" }} · report generated
 {{ generated_at.strftime("%Y-%m-%d %H:%M UTC") }}</p>

<h2>Funnel per step</h2>
<table>
<thead><tr><th>step</th><th>channel</th><th>scheduled</th><th>sent</th><th>skipped</th><th>skipped by reason</th>
<th>failed</th><th>cancelled</th><th>replied</th><th>bounced</th><th>unsubscribed</th><th>reply rate</th></tr></thead>
<tbody>
{% for step in funnel.steps %}<tr><td>{{ step.position }}</td><td>{{ step.channel }}</td><td>{{ step.scheduled }}</td>
<td>{{ step.sent }}</td><td>{{ step.skipped }}</td>
<td class="reasons">{{ reasons(step.skipped_by_reason) }}</td>
<td>{{ step.failed }}</td><td>{{ step.cancelled }}</td><td>{{ step.replied }}</td><td>{{ step.bounced }}</td>
<td>{{ step.unsubscribed }}</td><td>{{ percent(step.reply_rate) }}</td></tr>
{% endfor %}</tbody>
</table>

<h2>Charts</h2>
<figure>{{ charts.sends }}</figure>
<figure>{{ charts.funnel }}</figure>
<figure>{{ charts.reply_rate }}</figure>
<p class="meta">Days and hours are UTC. "Scheduled" counts every planned message by its slot; replies, bounces
 and opt-outs count each contact once, at the step they answered.</p>
</body>
</html>
"""

_ENVIRONMENT = Environment(autoescape=True, keep_trailing_newline=True)


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def reasons(by_reason: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in by_reason.items()) or "-"


def render_report(funnel: CampaignFunnel, generated_at: datetime) -> str:
    charts = {
        # matplotlib's own markup: the only text the template does not escape.
        "sends": Markup(report_charts.sends_per_day(funnel)),
        "funnel": Markup(report_charts.funnel_per_step(funnel)),
        "reply_rate": Markup(report_charts.reply_rate_per_step(funnel)),
    }
    template = _ENVIRONMENT.from_string(_TEMPLATE)
    return template.render(funnel=funnel, charts=charts, generated_at=generated_at, percent=percent, reasons=reasons)


def check_writable(path: Path) -> None:
    """Raise OSError unless `path` could be written (its folders may be created), before
    anything else is done, so a bad `--html` changes nothing."""
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{folder} is not writable")


def write_report(path: Path, html: str) -> None:
    """Write atomically: a reader (or a browser reloading) never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as output:
            output.write(html)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
