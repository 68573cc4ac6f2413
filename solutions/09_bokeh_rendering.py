# %% [markdown]
# # Solutions to chapter 09 · Rendering bokeh from depth

# %%
import torch

from lib import bokeh

gen = torch.Generator().manual_seed(0)
image = torch.rand(1, 3, 48, 48, generator=gen)
disparity = 0.2 + 0.8 * torch.rand(
    1, 1, 48, 48, generator=gen
)  # 1.25 m to 5 m, no order

# %% [markdown]
# ## Exercise 1
#
# *A 50 mm lens at f/1.8 on a full-frame sensor (36 mm wide), the image 1000 px wide, focused
# at 2 m: what is $K$, and how large is the blur disc of a background at infinity?*
#
# $f_\text{px} = 50 \cdot 1000 / 36 = 1388.9$ px; the aperture radius is
# $A = f/(2N) = 13.89$ mm $= 0.01389$ m; $K = f_\text{px} A = 19.29$ px·m. The background has
# disparity 0, the focus plane 0.5 m⁻¹: radius $19.29 \cdot 0.5 = 9.6$ px (diameter about 19 px,
# 2 % of the width). With the exact thin-lens factor $1/(1 - f/S_f)$ it grows by 2.5 %.

# %%
f_px, A = 50 * 1000 / 36, 0.050 / (2 * 1.8)
K = bokeh.K_from_lens(50, 1.8, 36, 1000)
radius = float(bokeh.coc_radius(torch.tensor(0.0), 1 / 2.0, K).abs())
print(f"K = {K:.2f} px m, background blur radius {radius:.2f} px")
assert abs(K - f_px * A) < 1e-6 and abs(radius - 9.645) < 0.01
exact = bokeh.K_from_lens(50, 1.8, 36, 1000, focus_distance=2.0)
assert abs(exact / K - 1 / (1 - 0.05 / 2.0)) < 1e-9

# %% [markdown]
# ## Exercise 2
#
# *Render a uniformly grey image with an arbitrary depth map. What must come out, and do all
# renderers of `lib.bokeh` agree?*
#
# Blur redistributes light without creating or destroying it. Where every pixel has the same
# colour, every weighted average of pixels has that colour: the image must come back grey,
# whatever the depth, for a renderer that normalises its weights. A renderer that darkens
# or brightens flat regions (forgotten normalisation, a layer that does not cover) fails here.

# %%
grey = torch.full((1, 3, 48, 48), 0.4)
for method in ("scatter", "layered"):
    out = bokeh.render_bokeh(grey, disparity, 0.5, 12.0, method=method)
    err = (out - 0.4).abs().max().item()
    print(f"{method}: largest change {err:.2e}")
    assert err < 1e-3, method

# %% [markdown]
# ## Exercise 3
#
# *A flat wall exactly at the focus distance: what does each renderer do to it? Try a single
# white pixel on black, in linear light (`gamma=1`).*
#
# Every pixel has circle-of-confusion radius $K |d - d_f| = 0$, so a lens leaves the wall sharp,
# and the layered renderer returns the image unchanged. Scatter, BokehMe's kernel, does not
# quite: its disc has a soft $\tanh$ edge, $w(\rho) = \frac12 + \frac12\tanh(4 (r - \rho))$, so
# at $r = 0$ a neighbour at distance 1 still gets $w = \frac12 + \frac12\tanh(-4) = 3.4\cdot10^{-4}$
# against $\frac12$ at the centre. A neighbour of the white pixel receives that share from it and
# $\frac12$ from itself; the weights of its four edge neighbours ($w_1$) and four diagonal ones
# ($w_{\sqrt2} = 1.2\cdot10^{-5}$) join the denominator:
# $w_1 / (\frac12 + 4 w_1 + 4 w_{\sqrt2}) = 6.7\cdot10^{-4}$. Small, but a sharp texture in focus is softened
# by about a quarter of a percent, and more in the dark tones once converted back to sRGB.

# %%
wall = torch.full((1, 1, 48, 48), 0.5)
layered = bokeh.render_bokeh(image, wall, 0.5, 12.0, method="layered")
assert (layered - image).abs().max().item() < 1e-5
dot = torch.zeros(1, 3, 9, 9)
dot[..., 4, 4] = 1.0
spread = bokeh.render_bokeh(
    dot, torch.full((1, 1, 9, 9), 0.5), 0.5, 12.0, method="scatter", gamma=1.0
)
w1, w2 = (0.5 + 0.5 * torch.tanh(torch.tensor(-4.0 * r)).item() for r in (1.0, 2**0.5))
expected = w1 / (0.5 + 4 * w1 + 4 * w2)
print(
    f"scatter: neighbour of the dot {spread[0, 0, 4, 5]:.3e} "
    f"(predicted {expected:.3e}); "
    f"layered: unchanged"
)
assert abs(spread[0, 0, 4, 5].item() - expected) < 1e-6
