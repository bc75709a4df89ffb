"""The report's charts as inline SVG, drawn by matplotlib on the Agg backend (no display, no
GUI toolkit, nothing fetched): sends per day per channel, the funnel per step, and the
reply rate per step. Text stays text in the SVG, so the numbers are searchable."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes  # after choosing the backend
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from schemas.campaign_funnel import CampaignFunnel

CHANNEL_COLOURS = {"email": "#4C72B0", "sms": "#55A868", "voicemail": "#C44E52"}
FUNNEL_BARS: tuple[tuple[str, str], ...] = (("scheduled", "#9DB4D6"), ("sent", "#4C72B0"), ("replied", "#55A868"))
FUNNEL_BARS += (("bounced", "#C44E52"), ("unsubscribed", "#8172B2"))
# Text stays text (searchable, smaller); ids are salted by a constant so output is stable.
_SVG_OPTIONS: dict[Any, Any] = {"svg.fonttype": "none", "svg.hashsalt": "outbound-report"}


def sends_per_day(funnel: CampaignFunnel) -> str:
    return _svg(sends_per_day_figure(funnel))


def sends_per_day_figure(funnel: CampaignFunnel) -> Figure:
    figure, axes = _figure()
    days = sorted({row.day for row in funnel.sends_per_day})
    if not days:
        return _empty(figure, axes, "No messages sent yet")
    labels = [day.isoformat() for day in days]
    bottom = [0] * len(days)
    for channel in funnel.channels:
        counts = {row.day: row.sent for row in funnel.sends_per_day if row.channel == channel}
        values = [counts.get(day, 0) for day in days]
        axes.bar(labels, values, bottom=bottom, label=channel, color=CHANNEL_COLOURS.get(channel, "#777777"))
        bottom = [low + value for low, value in zip(bottom, values, strict=True)]
    axes.set_title("Messages sent per day (UTC)")
    axes.set_ylabel("sent")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    # Beside the plot, never on a bar: a swatch on a bar of its own colour disappears.
    figure.legend(loc="outside right upper", frameon=False)
    axes.tick_params(axis="x", labelrotation=45 if len(days) > 6 else 0)
    return figure


def funnel_per_step(funnel: CampaignFunnel) -> str:
    return _svg(funnel_per_step_figure(funnel))


def funnel_per_step_figure(funnel: CampaignFunnel) -> Figure:
    figure, axes = _figure()
    if not funnel.steps:
        return _empty(figure, axes, "The campaign has no steps")
    width = 0.8 / len(FUNNEL_BARS)
    positions = range(len(funnel.steps))
    for index, (name, colour) in enumerate(FUNNEL_BARS):
        values = [getattr(step, name) for step in funnel.steps]
        bars = axes.bar([p + (index - (len(FUNNEL_BARS) - 1) / 2) * width for p in positions], values, width)
        for bar in bars:
            bar.set_color(colour)
        bars.set_label(name)
        axes.bar_label(bars, fontsize=7)
    axes.set_xticks(list(positions), [f"{step.position}. {step.channel}" for step in funnel.steps])
    axes.set_title("Funnel per step")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    figure.legend(loc="outside lower center", frameon=False, ncols=len(FUNNEL_BARS), fontsize=8)
    return figure


def reply_rate_per_step(funnel: CampaignFunnel) -> str:
    return _svg(reply_rate_per_step_figure(funnel))


def reply_rate_per_step_figure(funnel: CampaignFunnel) -> Figure:
    figure, axes = _figure()
    if not funnel.steps:
        return _empty(figure, axes, "The campaign has no steps")
    if not any(step.sent for step in funnel.steps):
        return _empty(figure, axes, "No messages sent yet, so no reply rate")
    if not any(step.replied for step in funnel.steps):
        sent = sum(step.sent for step in funnel.steps)
        return _empty(figure, axes, f"No replies yet ({sent:,} messages sent)")
    labels = [f"{step.position}. {step.channel}" for step in funnel.steps]
    rates = [100 * (step.reply_rate or 0.0) for step in funnel.steps]
    bars = axes.bar(labels, rates, color="#55A868")
    axes.bar_label(bars, labels=[_percent(step.reply_rate) for step in funnel.steps])
    axes.set_ylim(0, max([*rates, 1.0]) * 1.2)
    axes.set_title("Reply rate per step (replies / sent)")
    axes.set_ylabel("%")
    return figure


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.1f}%"


def _figure() -> tuple[Figure, Axes]:
    figure = Figure(figsize=(7.5, 3.2), layout="constrained")
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _empty(figure: Figure, axes: Axes, message: str) -> Figure:
    """A sentence instead of an empty frame."""
    axes.set_axis_off()
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes)
    return figure


def _svg(figure: Figure) -> str:
    """The `<svg>` element alone (no XML prolog or DOCTYPE), ready to inline in HTML."""
    buffer = io.StringIO()
    with matplotlib.rc_context(_SVG_OPTIONS):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]
