"""What ``surgisim assess`` writes: ``metrics.json``, ``metrics.csv``, annotated endoscope videos and
``report.html``, one self-contained page (plots as inline SVG, videos as WebM data a browser plays
without codecs it may lack) with the scorecard: unassisted, assisted and the reference (the
expert) side by side, a traffic light per metric.

Videos: each endoscope frame with the tip's path so far drawn over it (projected with the
camera's intrinsics, OpenCV), the reference path beside it, contacts ringed in red with their
depth, and the time, damage and what assistance did written in the corner.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np

from surgisim.surgeon.metrics import METRICS, Metric, speeds

VIDEO_FPS = 10  # one frame per control step (0.1 s): real time
WRITER = "surgisim assess"
COLOURS = {"unassisted": "#c0392b", "assisted": "#2471a3", "reference": "#229954"}
LIGHTS = {"green": "#2ecc71", "amber": "#f5b041", "red": "#e74c3c", "none": "#d5d8dc"}


def annotate(replay: Any, reference: np.ndarray | None, label: str, matrix: np.ndarray) -> list[np.ndarray]:
    """The replay's endoscope frames with the tip path, the reference path and contacts drawn,
    projected with the camera's ``matrix`` (``Camera.intrinsics`` of the frames' size)."""
    import cv2  # the surgeon extra

    arm = next(iter(replay.reached))
    frames = []
    for step, frame in enumerate(replay.frames):
        image = np.ascontiguousarray(frame[..., :3])
        camera = replay.camera[step]

        def pixels(points: np.ndarray, camera: np.ndarray = camera) -> np.ndarray:
            local = (points - camera[:3, 3]) @ camera[:3, :3]
            local = local[local[:, 2] > 1e-3]
            projected = (local / local[:, 2:3]) @ matrix.T
            return np.round(projected[:, :2]).astype(np.int32)

        if reference is not None and len(reference) > 1:
            cv2.polylines(image, [pixels(reference)], False, (34, 153, 84), 1, cv2.LINE_AA)
        path = pixels(replay.reached[arm][: step + 1])
        if len(path) > 1:
            cv2.polylines(image, [path], False, (255, 214, 10), 2, cv2.LINE_AA)
        for point in pixels(replay.contact_points[step]):
            cv2.circle(image, tuple(int(v) for v in point), 6, (231, 76, 60), 2, cv2.LINE_AA)
        lines = [f"{label}  t={replay.times[step]:.1f} s", f"damage {replay.damage_mm[step]:.1f} mm"]
        if replay.contact_depth[step] > 0 or len(replay.contact_points[step]):
            lines.append(f"CONTACT {replay.contact_depth[step] * 1000:.1f} mm deep")
        for row, text in enumerate(lines):
            cv2.putText(image, text, (4, 12 + 12 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1,
                        cv2.LINE_AA)  # fmt: skip
        frames.append(image)
    return frames


def write_video(frames: list[np.ndarray], path: Path) -> None:
    """A WebM (VP9) of ``frames`` at ``VIDEO_FPS``."""
    writer = imageio.get_writer(path, format="FFMPEG", fps=VIDEO_FPS, codec="libvpx-vp9", macro_block_size=1,
                                output_params=["-b:v", "0", "-crf", "36", "-row-mt", "1"])  # fmt: skip
    try:
        for frame in frames:
            writer.append_data(frame)
    finally:
        writer.close()


def scorecard(values: dict[str, dict[str, Any]], metrics: list[Metric] | None = None) -> list[dict[str, Any]]:
    """Per metric (``METRICS`` by default): its definition, each variant's value, and each
    variant's traffic light beside the reference's value."""
    reference = values.get("reference", {})
    rows = []
    for metric in METRICS if metrics is None else metrics:
        row = {variant: measured.get(metric.key) for variant, measured in values.items()}
        lights = {variant: metric.light(value, reference.get(metric.key))
                  for variant, value in row.items() if variant != "reference"}  # fmt: skip
        rows.append({"key": metric.key, "label": metric.label, "unit": metric.unit, "values": row,
                     "lights": lights, "definition": metric.definition, "source": metric.source})  # fmt: skip
    return rows


def write_tables(folder: Path, summary: dict[str, Any]) -> None:
    """``metrics.json`` (everything) and ``metrics.csv`` (a row per metric)."""
    (folder / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    variants = list(summary["metrics"])
    with open(folder / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["metric", "unit", *variants, *(f"{v}_light" for v in variants if v != "reference")])
        for row in summary["scorecard"]:
            values = ["" if row["values"][v] is None else row["values"][v] for v in variants]
            lights = [row["lights"][v] for v in variants if v != "reference"]
            writer.writerow([row["key"], row["unit"], *values, *lights])


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _panel(label: str, lines: list[tuple[str, np.ndarray, np.ndarray, str | None]]) -> str:
    """One inline SVG plot over time of (label, times, values, colour) lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 2.4))
    for name, times, values, colour in lines:
        axes.plot(times, values, label=name, color=colour, linewidth=1.4)
    axes.set_xlabel("time (s)")
    axes.set_ylabel(label)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, frameon=False)
    svg = _svg(figure)
    plt.close(figure)
    return svg


def plots(replays: dict[str, Any]) -> dict[str, str]:
    """Inline SVG plots over time: speed, clearance to anatomy (negative: penetration), damage,
    goal distance, assistance correction."""
    panels = {
        "speed": ("tip speed (mm/s)", lambda r: speeds(r.times, next(iter(r.reached.values()))) * 1000),
        "clearance": ("clearance to anatomy (mm)", lambda r: r.clearance * 1000),
        "damage": ("tissue damage (mm)", lambda r: r.damage_mm),
        "distance": ("distance to the goal (mm)", lambda r: r.distance_mm),
    }
    shown = {variant: replay for variant, replay in replays.items() if len(replay.times) > 1}
    figures = {key: _panel(label, [(variant, r.times, values(r), COLOURS[variant]) for variant, r in shown.items()])
               for key, (label, values) in panels.items()}  # fmt: skip
    assisted = replays.get("assisted")
    if assisted is not None and assisted.corrections:
        lines = [(name, assisted.times, correction * 1000, None) for name, correction in assisted.corrections.items()]
        figures["correction"] = _panel("correction (mm)", lines)
    return figures


def _format(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}" + (f" {unit}" if unit else "")


def write_html(folder: Path, summary: dict[str, Any], figures: dict[str, str], videos: dict[str, Path]) -> None:
    """``report.html``: the scorecard, the plots and the videos, in one file."""
    variants = list(summary["metrics"])
    head = "".join(f"<th>{html.escape(v)}</th>" for v in variants)
    rows = []
    for row in summary["scorecard"]:
        cells = []
        for variant in variants:
            light = row["lights"].get(variant, "none")
            text = html.escape(_format(row["values"][variant], row["unit"]))
            cells.append(f'<td class="value" data-light="{light}"><span class="light" style="background:'
                         f'{LIGHTS[light]}"></span>{text}</td>')  # fmt: skip
        title = html.escape(f"{row['definition']} ({row['source']})")
        rows.append(f'<tr data-metric="{row["key"]}"><th title="{title}">{html.escape(row["label"])}</th>'
                    f"{''.join(cells)}</tr>")  # fmt: skip
    interventions = "".join(
        f"<li><b>{html.escape(name)}</b>: mean correction {item['mean_mm']:.2f} mm, largest {item['max_mm']:.2f} mm, "
        f"active {item['active_s']:.1f} s</li>"
        for name, item in summary["interventions"].items()
    )
    unreachable = "".join(
        f"<li>{html.escape(variant)}: {start:.1f}-{end:.1f} s, missed by up to {worst * 1000:.1f} mm</li>"
        for variant, spans in summary["unreachable"].items()
        for start, end, worst in spans
    )
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in summary["notes"])
    plot_html = "".join(f'<figure id="plot-{key}">{svg}</figure>' for key, svg in figures.items())
    video_html = "".join(
        f'<figure><figcaption>{html.escape(variant)}</figcaption><video id="video-{variant}" controls loop muted '
        f'width="320" src="data:video/webm;base64,{base64.b64encode(path.read_bytes()).decode()}"></video></figure>'
        for variant, path in videos.items()
    )
    definitions = "".join(f"<dt>{html.escape(m['label'])}</dt><dd>{html.escape(m['definition'])}. Source: "
                          f"{html.escape(m['source'])}.</dd>" for m in summary["scorecard"])  # fmt: skip
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>surgisim assess: {html.escape(summary["task"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #1b2631; max-width: 1100px; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 4px 10px; border-bottom: 1px solid #e5e8e8; text-align: left; }}
td.value {{ font-variant-numeric: tabular-nums; }}
.light {{ display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 6px; }}
figure {{ display: inline-block; margin: 6px; vertical-align: top; }} svg {{ max-width: 540px; height: auto; }}
dt {{ font-weight: 600; margin-top: 6px; }}
</style></head><body>
<h1>{html.escape(summary["task"])}: {html.escape(Path(summary["trajectory"]).name)}</h1>
<p>Assistance: <b>{html.escape(summary["assist"] or "none")}</b>;
reference: {html.escape(summary["reference"] or "none")}; seed {summary["seed"]}.
Green: within 10 % of the reference or better; amber: within 50 %; red: worse, or any contact.</p>
<h2>Scorecard</h2>
<table id="scorecard"><tr><th>metric</th>{head}</tr>{"".join(rows)}</table>
<h2>What assistance did</h2><ul id="interventions">{interventions or "<li>no assistance</li>"}</ul>
<h2>Unreachable set-points</h2><ul id="unreachable">{unreachable or "<li>none</li>"}</ul>
<h2>Over time</h2><div id="plots">{plot_html}</div>
<h2>Endoscope</h2><p>Yellow: the tip's path; green: the reference's; red rings: contacts.</p>
<div id="videos">{video_html}</div>
<h2>Notes</h2><ul>{notes or "<li>none</li>"}</ul>
<h2>Definitions</h2><dl>{definitions}</dl>
<script>
for (const video of document.querySelectorAll("video")) {{
  video.addEventListener("loadeddata", () => {{ video.dataset.loaded = "yes"; }});
  video.addEventListener("error", () => console.error(`${{video.id}} cannot play: ${{video.error.message}}`));
}}
</script>
</body></html>
"""
    (folder / "report.html").write_text(page)
