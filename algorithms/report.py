"""Self-contained HTML reports (matplotlib figures embedded as PNG data URIs)."""

import base64
import html
import io
import os
import tempfile

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_html(fig, alt):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


def table_html(rows, caption=None):
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


def map_html(array, title, cmap="RdYlBu_r", categorical=False):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    arr = np.asarray(array, dtype=float)
    finite = arr[np.isfinite(arr)]
    if categorical or finite.size == 0:
        im = ax.imshow(arr, cmap="tab10" if categorical else cmap, interpolation="nearest")
    else:
        lo, hi = np.percentile(finite, [2, 98])
        im = ax.imshow(arr, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, shrink=0.8)
    return figure_html(fig, title)


def variogram_html(lags, semivariance, model_function, title):
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
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".partial.html")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
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
