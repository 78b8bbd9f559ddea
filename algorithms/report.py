"""Self-contained HTML reports (matplotlib figures embedded as PNG data URIs)."""

import base64
import html
import io
import os

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_html(fig, alt):
    """A matplotlib figure as an inline PNG ``<img>`` (``alt`` text), the figure closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


def table_html(rows, caption=None):
    """Rows (dicts with the same keys) as an HTML table, with an optional caption."""
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = []
    for row in rows:
        cells = []
        for v in row.values():
            if isinstance(v, (float, np.floating)):
                v = f"{v:.4g}"
            elif isinstance(v, (list, tuple, np.ndarray)):
                v = ", ".join(f"{x:.4g}" if isinstance(x, (float, np.floating)) else str(x)
                              for x in v)
            cells.append(f"<td>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<tr>{head}</tr>{''.join(body)}</table>"


def map_html(array, title, cmap="RdYlBu_r", categorical=False, points=None):
    """A small map of ``array`` (2-98 % stretch); ``points`` (cols, rows) in pixels are overlaid."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    arr = np.asarray(array, dtype=float)
    finite = arr[np.isfinite(arr)]
    if categorical or finite.size == 0:
        im = ax.imshow(arr, cmap="tab10" if categorical else cmap, interpolation="nearest")
    else:
        lo, hi = np.percentile(finite, [2, 98])
        im = ax.imshow(arr, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
    if points is not None:
        ax.plot(points[0], points[1], "o", mfc="none", mec="magenta", mew=1.5, ms=6)
        ax.set_xlim(-0.5, arr.shape[1] - 0.5)
        ax.set_ylim(arr.shape[0] - 0.5, -0.5)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, shrink=0.8)
    return figure_html(fig, title)


def variogram_html(lags, semivariance, model_function, title):
    """The experimental variogram and the fitted model as an inline figure."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    ax.plot(lags, semivariance, "o", label="experimental")
    h = np.linspace(0, float(np.max(lags)) * 1.05, 200)
    ax.plot(h, model_function(h), "-", label="fitted model")
    ax.set_xlabel("lag distance (map units)")
    ax.set_ylabel("semivariance")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return figure_html(fig, title)


def scatter_html(x, y, title, xlabel, ylabel, *, one_to_one=True, max_points=20_000,
                 log=False):
    """Scatter plot of ``y`` against ``x`` (finite pairs), with the 1:1 line.

    More than ``max_points`` pairs are shown as a hexagonal density plot;
    ``log``: logarithmic axes (positive pairs only).
    """
    plt = _pyplot()
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    if log:
        ok &= (x > 0) & (y > 0)
    x, y = x[ok], y[ok]
    fig, ax = plt.subplots(figsize=(3.8, 3.6))
    if x.size > max_points:
        ax.hexbin(x, y, gridsize=60, bins="log", mincnt=1, cmap="viridis",
                  xscale="log" if log else "linear", yscale="log" if log else "linear")
    else:
        ax.plot(x, y, "o", ms=3, alpha=0.7)
    if one_to_one and x.size:
        lo = float(min(x.min(), y.min()))
        hi = float(max(x.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="1:1")
        ax.legend(fontsize=8, loc="upper left")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    return figure_html(fig, title)


def curves_html(curves, title, xlabel, ylabel, *, diagonal=False):
    """Several curves ``{label: (x, y)}`` on one plot, with the 1:1 diagonal if asked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.0))
    for label, (cx, cy) in curves.items():
        ax.plot(cx, cy, "-", lw=1.6, label=label)
    if diagonal:
        ax.plot([0, 1], [0, 1], "k:", lw=1, label="random")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return figure_html(fig, title)


def bars_html(labels, values, title, ylabel, *, highlight=None, reference=None,
              reference_label=None):
    """A bar chart; bar ``highlight`` (index) is drawn in another colour, ``reference`` as a line."""
    plt = _pyplot()
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(values) + 1.5), 3.4))
    colors = ["#8aa9c9"] * len(values)
    if highlight is not None:
        colors[highlight] = "#d95f02"
    ax.bar(np.arange(len(values)), np.nan_to_num(values), color=colors)
    if reference is not None and np.isfinite(reference):
        ax.axhline(reference, color="k", ls="--", lw=1, label=reference_label)
        if reference_label:
            ax.legend(fontsize=8)
    ax.set_xticks(np.arange(len(values)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    return figure_html(fig, title)


STYLE = """<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 7px;
font-size:13px;text-align:right}th{background:#eee}caption{font-weight:bold;text-align:left}
img{margin:4px;vertical-align:top}</style>"""


def write_report(path, title, sections):
    """Write ``sections`` (list of (heading, html)) atomically to ``path``."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title>{STYLE}</head><body><h1>{html.escape(title)}</h1>"]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    parts.append("</body></html>")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    from .raster_io import partial_path, remove_stale_partials

    remove_stale_partials(folder)
    tmp = partial_path(folder, os.path.basename(path), ".partial.html")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(parts))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a report is for sharing
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
