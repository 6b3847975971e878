"""Server-rendered SVG charts. Each has a title and a description for screen readers; the
pages put the same figures in a table next to it (the text alternative)."""

from collections.abc import Sequence
from xml.sax.saxutils import escape

from markupsafe import Markup

# Dark enough for 4.5:1 against white (WCAG AA), for bars that carry text beside them.
COLOURS = ("#1f5fa8", "#a33b20", "#2f6b2f", "#6a3d9a", "#8a5a00", "#444444")


def bar_chart(chart_id: str, title: str, rows: Sequence[tuple[str, int]],
              description: str = "") -> Markup:
    """Horizontal bars, one per (label, value), labelled with both."""
    # Room for the longest label (about 8.5 units a character at this font size).
    label_w = min(300, max(80, round(8.5 * max((len(label) for label, _ in rows), default=0))
                           + 12))
    width, bar, gap = label_w + 280, 24, 8
    height = max(1, len(rows)) * (bar + gap) + gap
    top = max((value for _, value in rows), default=0) or 1
    parts = [f'<svg class="chart bars" id="{chart_id}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" '
             f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="{chart_id}-title">{escape(title)}</title>',
             f'<desc id="{chart_id}-desc">{escape(description or _describe(rows))}</desc>']
    for i, (label, value) in enumerate(rows):
        y = gap + i * (bar + gap)
        length = round((width - label_w - 50) * value / top)
        parts.append(f'<text x="{label_w - 8}" y="{y + bar * 0.7:.1f}" text-anchor="end" '
                     f'font-size="15" fill="#1a1a1a">{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{max(length, 1)}" height="{bar}" '
                     f'fill="{COLOURS[0]}"/>')
        parts.append(f'<text x="{label_w + max(length, 1) + 6}" y="{y + bar * 0.7:.1f}" '
                     f'font-size="15" fill="#1a1a1a">{value}</text>')
    if not rows:
        parts.append(f'<text x="8" y="{gap + bar * 0.7}" font-size="14" fill="#1a1a1a">'
                     'Nothing to show yet</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def day_chart(chart_id: str, title: str, days: Sequence[tuple[str, int, int]]) -> Markup:
    """Claims (dark) and reviews (light) per day, as paired columns."""
    width, height, base, left = 600, 180, 150, 30
    top = max((max(c, r) for _, c, r in days), default=0) or 1
    step = (width - left - 10) / max(1, len(days))
    total_c = sum(c for _, c, _ in days)
    total_r = sum(r for _, _, r in days)
    span = f"{days[0][0]} to {days[-1][0]}" if days else "no days"
    parts = [f'<svg class="chart" id="{chart_id}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
             'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="{chart_id}-title">{escape(title)}</title>',
             f'<desc id="{chart_id}-desc">{total_c} claims and {total_r} reviews from '
             f'{escape(span)}; the table below lists each day.</desc>',
             f'<line x1="{left}" y1="{base}" x2="{width}" y2="{base}" stroke="#444"/>',
             f'<text x="{left - 4}" y="20" text-anchor="end" font-size="12" '
             f'fill="#1a1a1a">{top}</text>',
             f'<text x="{left - 4}" y="{base}" text-anchor="end" font-size="12" '
             'fill="#1a1a1a">0</text>']
    for i, (_day, claims, reviews) in enumerate(days):
        x = left + i * step
        w = max(step / 2 - 1, 1)
        for j, (value, colour) in enumerate(((claims, COLOURS[0]), (reviews, "#6fa8dc"))):
            h = round((base - 20) * value / top)
            parts.append(f'<rect x="{x + j * w:.1f}" y="{base - h}" width="{w:.1f}" '
                         f'height="{h}" fill="{colour}"/>')
    if days:
        parts.append(f'<text x="{left}" y="{base + 20}" font-size="12" fill="#1a1a1a">'
                     f'{escape(days[0][0])}</text>')
        parts.append(f'<text x="{width}" y="{base + 20}" text-anchor="end" font-size="12" '
                     f'fill="#1a1a1a">{escape(days[-1][0])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _describe(rows: Sequence[tuple[str, int]]) -> str:
    return "; ".join(f"{label}: {value}" for label, value in rows) or "no data"
