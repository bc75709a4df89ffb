"""The report's charts read at a glance: legends beside the plot (a swatch drawn on a bar
of its own colour disappears) and a sentence instead of an empty frame."""

from __future__ import annotations

from datetime import date

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from schemas.campaign_funnel import CampaignFunnel, DailySends, FunnelStep
from starter.report_charts import (
    funnel_per_step_figure,
    reply_rate_per_step,
    reply_rate_per_step_figure,
    sends_per_day_figure,
)

CHANNELS = ("email", "sms", "voicemail")


def funnel(*, replied: int = 0, sent: int = 5) -> CampaignFunnel:
    steps = [
        FunnelStep(position=position, channel=channel, scheduled=5, sent=sent, replied=replied)
        for position, channel in enumerate(CHANNELS, start=1)
    ]
    days = [DailySends(day=date(2026, 12, day), channel=c, sent=sent) for day in (1, 2) for c in CHANNELS if sent]
    return CampaignFunnel(
        campaign_id=1, name="Demo", status="COMPLETED", enrolled=5, computed_at=None, steps=steps, sends_per_day=days
    )


def legend_and_plot(figure: Figure) -> tuple[Bbox, Bbox, list[str]]:
    canvas = FigureCanvasAgg(figure)  # the backend the report draws with
    canvas.draw()
    renderer = canvas.get_renderer()
    (legend,) = figure.legends
    (axes,) = figure.axes
    labels = [text.get_text() for text in legend.get_texts()]
    return legend.get_window_extent(renderer), axes.get_window_extent(renderer), labels


def test_the_per_day_legend_has_every_channel_and_stays_off_the_bars() -> None:
    legend, plot, labels = legend_and_plot(sends_per_day_figure(funnel()))
    assert labels == list(CHANNELS), "a swatch for each channel, voicemail included"
    assert not legend.overlaps(plot)


def test_the_funnel_legend_stays_off_the_bars() -> None:
    legend, plot, labels = legend_and_plot(funnel_per_step_figure(funnel(replied=1)))
    assert labels == ["scheduled", "sent", "replied", "bounced", "unsubscribed"]
    assert not legend.overlaps(plot)


def test_the_reply_rate_chart_says_so_when_there_are_no_replies() -> None:
    figure = reply_rate_per_step_figure(funnel(replied=0))
    (axes,) = figure.axes
    assert [text.get_text() for text in axes.texts] == ["No replies yet (15 messages sent)"]
    assert not axes.patches, "no empty bars"
    assert "No replies yet" in reply_rate_per_step(funnel(replied=0))
    nothing_sent = reply_rate_per_step_figure(funnel(sent=0))
    assert [text.get_text() for text in nothing_sent.axes[0].texts] == ["No messages sent yet, so no reply rate"]


def test_the_reply_rate_chart_draws_bars_once_someone_replied() -> None:
    (axes,) = reply_rate_per_step_figure(funnel(replied=1)).axes
    assert len(axes.patches) == 3
