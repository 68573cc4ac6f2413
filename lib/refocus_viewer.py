"""A refocus viewer that needs no kernel: precomputed focal stacks in one HTML element.

The live notebook refocuses with ipywidgets, which need a running kernel. For the HTML edition
(and any browser), :func:`focal_grid` renders a grid of settings once, every focus distance with
every f-number, for one or more depth maps (the true depth, a model's), and :func:`viewer_html`
packs the frames as JPEG data into a page element with two sliders, a depth selector and
click-to-focus (the click reads the disparity under the cursor from a small copy of the map and
jumps to the nearest focus distance). Plain HTML and JavaScript; nothing is fetched.

>>> import torch
>>> img, disp = torch.rand(3, 16, 24), torch.rand(1, 16, 24) + 0.2
>>> grid = focal_grid(img, {"true": disp}, [1.0, 2.0], [2.0, 4.0], lambda n: 10.0 / n)
>>> len(grid["true"]), len(grid["true"][0]), grid["true"][0][0].shape
(2, 2, (16, 24, 3))
>>> page = viewer_html("demo", grid, [1.0, 2.0], [2.0, 4.0], {"true": disp})
>>> page.count("data:image/jpeg;base64,") == 4 and "input" in page
True
"""
from __future__ import annotations

import base64
import io
import json
import uuid
from typing import Callable, Sequence

import numpy as np
import torch

from lib import bokeh

__all__ = ["focal_grid", "viewer_html", "still_png", "display_viewer"]


def _uint8(image: torch.Tensor) -> np.ndarray:
    return (image.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def focal_grid(image: torch.Tensor, disparities: dict[str, torch.Tensor],
               focus_distances: Sequence[float], f_numbers: Sequence[float],
               K_of: Callable[[float], float], device="cpu") -> dict[str, list[list[np.ndarray]]]:
    """Refocused frames ``[focus][f-number]`` (H, W, 3) uint8 for each named disparity map.

    Args:
        image: (3,H,W) sRGB in [0, 1], all in focus.
        disparities: name -> (1,H,W) disparity in 1/m (e.g. ``{"true": ..., "zoo": ...}``).
        focus_distances: metres, one slider step each.
        f_numbers: one slider step each; ``K_of(f_number)`` gives the renderer's K (px m).
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3,H,W), got {tuple(image.shape)}")
    if not focus_distances or not f_numbers or min(focus_distances) <= 0:
        raise ValueError("need at least one positive focus distance and one f-number")
    grid = {}
    with torch.no_grad():
        for name, disp in disparities.items():
            if disp.shape != (1, *image.shape[1:]):
                raise ValueError(f"disparity {name!r} must be (1,H,W) like the image, "
                                 f"got {tuple(disp.shape)}")
            grid[name] = [[_uint8(bokeh.render_bokeh(image[None].to(device), disp[None].to(device),
                                                     1.0 / s, K_of(n))[0])
                           for n in f_numbers] for s in focus_distances]
    return grid


def _jpeg(frame: np.ndarray, quality: int = 88) -> str:
    import imageio.v3 as iio

    data = iio.imwrite("<bytes>", frame, extension=".jpg", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def _small(disp: torch.Tensor, width: int = 64) -> dict:
    h, w = disp.shape[-2:]
    sw = min(width, w)
    sh = max(1, round(h * sw / w))
    small = torch.nn.functional.interpolate(disp[None].float(), size=(sh, sw), mode="area")[0, 0]
    return {"w": sw, "h": sh, "v": [round(float(v), 4) for v in small.flatten()]}


def viewer_html(title: str, grid: dict[str, list[list[np.ndarray]]], focus_distances: Sequence[float],
                f_numbers: Sequence[float], disparities: dict[str, torch.Tensor],
                labels: dict[str, str] | None = None) -> str:
    """The viewer as one self-contained HTML element (JPEG frames embedded)."""
    uid = "rv" + uuid.uuid4().hex[:8]
    frames = {k: [[_jpeg(f) for f in row] for row in rows] for k, rows in grid.items()}
    h, w = next(iter(grid.values()))[0][0].shape[:2]
    data = {"frames": frames, "focus": list(map(float, focus_distances)),
            "fnum": list(map(float, f_numbers)),
            "disp": {k: _small(v) for k, v in disparities.items()}}
    labels = labels or {k: k for k in grid}
    options = "".join(f'<option value="{k}">{labels.get(k, k)}</option>' for k in grid)
    mid = len(focus_distances) // 2
    return f"""<div class="refocus-viewer" id="{uid}" style="font-family: sans-serif; font-size: 14px">
<div style="margin-bottom: 6px"><b>{title}</b></div>
<div style="display: flex; gap: 18px; flex-wrap: wrap; margin-bottom: 6px">
 <label>depth <select class="depth">{options}</select></label>
 <label>focus <input class="focus" type="range" min="0" max="{len(focus_distances) - 1}"
  step="1" value="{mid}"> <span class="focus-value"></span></label>
 <label>aperture <input class="fnum" type="range" min="0" max="{len(f_numbers) - 1}"
  step="1" value="0"> <span class="fnum-value"></span></label>
</div>
<img class="frame" width="{w}" height="{h}" style="cursor: crosshair; max-width: 100%"
 alt="refocused frame">
<div class="caption" style="color: #555">Click the picture to focus on that point.</div>
<script>
(function () {{
  var root = document.getElementById("{uid}");
  var data = {json.dumps(data)};
  var img = root.querySelector(".frame"), depth = root.querySelector(".depth");
  var focus = root.querySelector(".focus"), fnum = root.querySelector(".fnum");
  function show() {{
    var k = +focus.value, a = +fnum.value;
    img.src = data.frames[depth.value][k][a];
    root.querySelector(".focus-value").textContent = data.focus[k].toFixed(2) + " m";
    root.querySelector(".fnum-value").textContent = "f/" + data.fnum[a];
  }}
  [focus, fnum, depth].forEach(function (el) {{
    el.addEventListener("input", show); el.addEventListener("change", show);
  }});
  img.addEventListener("click", function (e) {{
    var r = img.getBoundingClientRect(), d = data.disp[depth.value];
    var x = Math.min(d.w - 1, Math.floor((e.clientX - r.left) / r.width * d.w));
    var y = Math.min(d.h - 1, Math.floor((e.clientY - r.top) / r.height * d.h));
    var target = d.v[y * d.w + x], best = 0;
    data.focus.forEach(function (s, i) {{
      if (Math.abs(1 / s - target) < Math.abs(1 / data.focus[best] - target)) best = i;
    }});
    focus.value = best; show();
  }});
  show();
  var test = {{}};
  (window.courseViewers = window.courseViewers || []).push({{
    start: function () {{  // move the focus slider as a reader would
      test.before = img.src;
      focus.value = (+focus.value + 1) % data.focus.length;
      focus.dispatchEvent(new Event("input"));
      test.after = img.src;
    }},
    result: function () {{  // called later: has the new frame been decoded and shown?
      return {{id: "{uid}", slider_changes_image: test.after !== test.before,
               loaded: img.complete && img.naturalWidth > 0,
               frames: data.focus.length * data.fnum.length * Object.keys(data.frames).length}};
    }}
  }});
}})();
</script>
</div>"""


def still_png(title: str, grid, focus_distances, f_numbers, labels=None) -> bytes:
    """What the PDF shows in place of the viewer: for every depth, the nearest and the farthest
    focus at the widest aperture, each frame titled with its settings."""
    import matplotlib.figure

    labels = labels or {}
    names = list(grid)
    h, w = grid[names[0]][0][0].shape[:2]
    fig = matplotlib.figure.Figure(figsize=(6.0, 6.0 * h / w * len(names) / 2 + 0.5 * len(names)),
                                   constrained_layout=True)
    axes = fig.subplots(len(names), 2, squeeze=False)
    for r, name in enumerate(names):
        for c, k in enumerate((0, len(focus_distances) - 1)):
            axes[r, c].imshow(grid[name][k][0])
            axes[r, c].set_title(f"{labels.get(name, name)}: focus {focus_distances[k]:.2f} m, "
                                 f"f/{f_numbers[0]:g}", fontsize=8)
            axes[r, c].axis("off")
    fig.suptitle(f"{title} (the HTML edition has the interactive viewer)", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=160)
    return buf.getvalue()


def display_viewer(title: str, grid, focus_distances, f_numbers, disparities, labels=None,
                   still: np.ndarray | None = None) -> None:
    """Show the viewer in a notebook output (the HTML edition keeps it; the PDF, which cannot
    run scripts, shows ``still`` instead, by default :func:`still_png`). Nothing is returned, so that a call that ends a cell does not
    also print the page's source as the cell's value."""
    import imageio.v3 as iio
    from IPython.display import display

    page = viewer_html(title, grid, focus_distances, f_numbers, disparities, labels)
    png = base64.b64encode(still_png(title, grid, focus_distances, f_numbers, labels)
                           if still is None else iio.imwrite("<bytes>", still, extension=".png")
                           ).decode()
    note = f"{title}: an interactive viewer in the HTML edition (reports/site/)."
    display({"text/html": page, "image/png": png, "text/plain": note}, raw=True)
