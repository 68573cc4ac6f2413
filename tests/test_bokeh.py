"""Tests of lib.bokeh: thin-lens numbers worked by hand, spot sizes and shapes, light, occlusion,
independent loop references for the scatter and the single-layer blur, gradients, bad input."""
from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

import lib.bokeh as bokeh
from lib.bokeh import K_from_lens, aperture_kernel, coc_radius, focal_stack, render_bokeh

METHODS = ("layered", "scatter")
GAMMA = 2.2


def point_scene(size=48, value=1.0):
    """A black image with one lit pixel in the middle; its (y, x)."""
    img = torch.zeros(1, 3, size, size)
    c = size // 2
    img[..., c, c] = value
    return img, (c, c)


def spot_stats(lin, centre):
    """Radius estimates of a spot of linear light (1,3,H,W): from its second moment (a disc of
    radius r has E[rho^2] = r^2/2) and from the area lit above half the peak (the soft edge of
    a disc crosses half at r); and the number of pixels lit at all (> 1e-4 of the peak)."""
    I = lin[0].mean(0).double()
    H, W = I.shape
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    rho2 = (y - centre[0]) ** 2 + (x - centre[1]) ** 2
    m2 = float((I * rho2).sum() / I.sum())
    half = int((I > 0.5 * I.max()).sum())
    lit = int((I > 1e-4 * I.max()).sum())
    return math.sqrt(2 * m2), math.sqrt(half / math.pi), lit


def to_lin(x):
    return x.clamp(0, 1) ** GAMMA


# ----------------------------------------------------------------------------- optics


def test_doctests():
    assert doctest.testmod(bokeh).failed == 0


def test_coc_radius_hand_values_and_batch():
    d = torch.tensor([0.1, 0.5, 1.0])
    assert torch.allclose(coc_radius(d, 0.5, 10.0), torch.tensor([-4.0, 0.0, 5.0]))
    disp = torch.full((2, 1, 2, 2), 0.25)
    s = coc_radius(disp, torch.tensor([0.5, 0.25]), torch.tensor([8.0, 3.0]))
    assert torch.allclose(s[0], torch.full((1, 2, 2), -2.0)) and torch.allclose(s[1], torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="K"):
        coc_radius(disp, 0.5, torch.tensor([1.0, 2.0, 3.0]))


def test_K_from_lens_by_hand():
    # 50 mm f/2 on a 36 mm sensor imaged by 1000 px: f_px = 50 * 1000 / 36 = 1388.89 px,
    # aperture radius A = 50 / (2 * 2) = 12.5 mm = 0.0125 m, K = f_px * A = 17.3611 px m.
    assert K_from_lens(50, 2.0, 36, 1000) == pytest.approx(1388.8889 * 0.0125, rel=1e-5)
    assert K_from_lens(50, 2.0, 36, 1000) == pytest.approx(17.3611, abs=1e-4)
    # the exact thin-lens factor 1/(1 - f/S_f) for S_f = 2 m: 17.3611 / 0.975
    assert K_from_lens(50, 2.0, 36, 1000, focus_distance=2.0) == pytest.approx(17.8063, abs=1e-4)
    # against the thin-lens equation solved directly: sensor at v_f, a point at S = 10 m focuses
    # at v; blur diameter D |v - v_f| / v on the sensor (mm), radius in px = half * px/mm.
    f, N, S_f, S = 50.0, 2.0, 2000.0, 10000.0
    v_f, v = 1 / (1 / f - 1 / S_f), 1 / (1 / f - 1 / S)
    radius_px = 0.5 * (f / N) * abs(v - v_f) / v * 1000 / 36
    K = K_from_lens(f, N, 36, 1000, focus_distance=S_f / 1000)
    assert K * abs(1 / 10.0 - 1 / 2.0) == pytest.approx(radius_px, rel=1e-9)
    with pytest.raises(ValueError, match="f_number"):
        K_from_lens(50, 0, 36, 1000)
    with pytest.raises(ValueError, match="focus_distance"):
        K_from_lens(50, 2, 36, 1000, focus_distance=0.01)


def test_aperture_kernel_is_normalised_disc_and_polygon():
    k = aperture_kernel(5.0).double()
    assert k.sum().item() == pytest.approx(1.0, abs=1e-6) and k.shape == (13, 13)
    assert torch.allclose(k, k.flip(0)) and torch.allclose(k, k.t())
    R = 6
    o = torch.arange(-R, R + 1, dtype=torch.float64)
    rho = torch.sqrt(o[:, None] ** 2 + o[None, :] ** 2)
    inside = rho <= 4.5                                   # fully inside the soft edge [4.5, 5.5]
    assert torch.allclose(k[inside], k[R, R].expand(int(inside.sum())))
    assert (k[rho >= 5.5] == 0).all()
    hexagon = aperture_kernel(5.0, blades=6)
    assert (hexagon > 0).sum() < (k > 0).sum()


# ----------------------------------------------------------------------------- spots


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("radius", [3.0, 6.0, 8.5])
def test_point_becomes_disc_of_coc_radius(method, radius):
    img, c = point_scene()
    disp = torch.full((1, 1, 48, 48), 0.5 + radius / 20.0)   # a lit point on a black wall, out of focus
    out = render_bokeh(img, disp, 0.5, 20.0, method=method)
    r_moment, r_half, _ = spot_stats(to_lin(out), c)
    assert r_moment == pytest.approx(radius, abs=1.0)
    assert r_half == pytest.approx(radius, abs=1.0)


@pytest.mark.parametrize("radius", [3.0, 6.0, 8.5])
def test_point_in_front_of_sharp_wall_becomes_disc_layered(radius):
    img, c = point_scene()
    disp = torch.full((1, 1, 48, 48), 0.5)                  # the black wall in focus
    disp[..., c[0], c[1]] = 0.5 + radius / 20.0              # the point in front of it
    out = to_lin(render_bokeh(img, disp, 0.5, 20.0))
    r_moment, r_half, _ = spot_stats(out, c)
    assert r_moment == pytest.approx(radius, abs=1.0)
    assert r_half == pytest.approx(radius, abs=1.0)
    assert float(out.sum()) == pytest.approx(3.0, rel=0.02)    # all its light, none lost or added
    # the baseline: sharp wall pixels outvote the faint disc, the point stays a bright dot
    # (BokehMe's weight 1/(r^2 + 0.2): the point keeps 0.94 / 0.81 / 0.67 of its light at r = 3,
    # 6, 8.5 px, where a disc spreads it to 1 / (pi r^2) = 0.035 / 0.009 / 0.004)
    scatter = to_lin(render_bokeh(img, disp, 0.5, 20.0, method="scatter"))
    assert float(scatter[0, 0, c[0], c[1]]) > 0.5


@pytest.mark.parametrize("method", METHODS)
def test_blur_is_symmetric_about_the_focus_plane(method):
    img, c = point_scene(40)
    radii = []
    for sign in (1.0, -1.0):
        disp = torch.full((1, 1, 40, 40), 0.5 + sign * 0.35)    # 7 px in front / behind, K = 20
        radii.append(spot_stats(to_lin(render_bokeh(img, disp, 0.5, 20.0, method=method)), c)[0])
    assert radii[0] == pytest.approx(7.0, abs=1.0)
    assert radii[0] == pytest.approx(radii[1], abs=0.25)


def angular_moments(I, centre, orders=(2, 4, 6)):
    """|sum I rho^2 exp(i m theta)| / sum I rho^2 for each m: the m-fold part of a spot's shape."""
    H, W = I.shape
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float64) - centre[0],
                          torch.arange(W, dtype=torch.float64) - centre[1], indexing="ij")
    w = I.double() * (x * x + y * y)
    theta = torch.atan2(y, x)
    return [float(torch.hypot((w * torch.cos(m * theta)).sum(), (w * torch.sin(m * theta)).sum()) / w.sum())
            for m in orders]


@pytest.mark.parametrize("method", METHODS)
def test_hexagonal_aperture(method):
    img, c = point_scene(40)
    disp = torch.full((1, 1, 40, 40), 1.0)                       # the whole scene 10 px out of focus
    disc = to_lin(render_bokeh(img, disp, 0.5, 20.0, method=method))[0, 0]
    hexa = to_lin(render_bokeh(img, disp, 0.5, 20.0, method=method, blades=6))[0, 0]
    lit_disc, lit_hex = int((disc > 0.5 * disc.max()).sum()), int((hexa > 0.5 * hexa.max()).sum())
    # area of a hexagon with corners on the circle: 3 sqrt(3)/2 r^2 = 0.83 of the disc
    assert lit_hex < 0.9 * lit_disc
    assert lit_hex == pytest.approx(lit_disc * 3 * math.sqrt(3) / (2 * math.pi), rel=0.1)
    # 6-fold symmetry: a strong 6th angular harmonic, none of the 2nd, little of the 4th (the
    # pixel grid's own); a disc has none of them. Continuous hexagon: m6 = 0.047.
    m2, m4, m6 = angular_moments(hexa, c)
    d2, d4, d6 = angular_moments(disc, c)
    assert m6 > 0.03 and d6 < 0.01
    # BokehMe's scatter kernel has a sharp edge (tanh over ~0.5 px), so the pixel grid aliases
    # its hexagon a little more than the 1-px ramp of the layered renderer's kernel
    assert m2 < (0.005 if method == "layered" else 0.2 * m6) and d2 < 0.005 and m4 < 0.2 * m6


def test_polygon_in_front_is_point_reflection_of_behind():
    img, c = point_scene(33)
    outs = []
    for d in (0.8, 0.2):                                            # 6 px in front, 6 px behind
        disp = torch.full((1, 1, 33, 33), d)
        outs.append(render_bokeh(img, disp, 0.5, 20.0, blades=5, rotation=0.3))
    front, back = to_lin(outs[0]), to_lin(outs[1])
    assert not torch.allclose(front, back, atol=1e-3)
    assert torch.allclose(front, back.flip(-1, -2), atol=1e-6)


# ----------------------------------------------------------------------------- light, focus plane


@pytest.mark.parametrize("method", METHODS)
def test_focus_plane_and_pinhole_are_identity(method):
    # BokehMe's scatter gives a sharp pixel's neighbours (0.5 + 0.5 tanh(-4)) / 0.2 = 0.0017 of
    # weight against its own 2.5: a pinhole render is the image up to 0.3 % of the neighbours'
    # difference in linear light, not exactly (as in BokehMe); the layered renderer keeps it exactly
    lin = (lambda x: x) if method == "layered" else to_lin
    atol = 1e-5 if method == "layered" else 5e-3
    g = torch.Generator().manual_seed(1)
    img = torch.rand(2, 3, 20, 24, generator=g)
    disp = torch.full((2, 1, 20, 24), 0.4)
    assert torch.allclose(lin(render_bokeh(img, disp, 0.4, 30.0, method=method)), lin(img), atol=atol)
    disp = torch.rand(2, 1, 20, 24, generator=g)
    assert torch.allclose(lin(render_bokeh(img, disp, 0.4, 0.0, method=method)), lin(img), atol=atol)


def test_total_light_is_preserved_layered():
    # bright patches at four depths (in focus, in front, behind) on a black wall far behind;
    # all blur stays inside the image
    g = torch.Generator().manual_seed(2)
    img = torch.zeros(1, 3, 64, 64)
    disp = torch.zeros(1, 1, 64, 64)
    for (y, x, d) in ((16, 16, 0.9), (16, 46, 0.35), (46, 30, 0.6), (46, 50, 0.5)):
        img[..., y - 4:y + 4, x - 4:x + 4] = torch.rand(1, 3, 8, 8, generator=g)
        disp[..., y - 4:y + 4, x - 4:x + 4] = d
    out = render_bokeh(img, disp, 0.5, 20.0)                        # CoC 8, -3, 2, 0 px; wall -10
    assert float(to_lin(out).sum()) == pytest.approx(float(to_lin(img).sum()), rel=0.01)
    assert not torch.allclose(out, img, atol=0.05)


@pytest.mark.parametrize("method", METHODS)
def test_total_light_is_preserved_single_depth(method):
    g = torch.Generator().manual_seed(3)
    img = torch.zeros(1, 3, 48, 48)
    img[..., 14:34, 14:34] = torch.rand(1, 3, 20, 20, generator=g)
    out = render_bokeh(img, torch.full((1, 1, 48, 48), 0.8), 0.5, 20.0, method=method)   # 6 px
    assert float(to_lin(out).sum()) == pytest.approx(float(to_lin(img).sum()), rel=0.01)


# ----------------------------------------------------------------------------- occlusion


def two_planes(fg_disp, bg_disp, size=48, square=(14, 34), fg=(0.9, 0.1, 0.1), bg=None):
    """A red square (fg_disp) on a background (bg_disp): flat colour or a seeded texture."""
    img = torch.empty(1, 3, size, size)
    if bg is None:
        img[:] = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(4))
    else:
        img[:] = torch.tensor(bg).view(1, 3, 1, 1)
    a, b = square
    img[..., a:b, a:b] = torch.tensor(fg).view(1, 3, 1, 1)
    disp = torch.full((1, 1, size, size), float(bg_disp))
    disp[..., a:b, a:b] = fg_disp
    return img, disp


def test_sharp_foreground_stays_sharp_over_blurred_background():
    img, disp = two_planes(1.0, 0.5)                                # square in focus, wall 6 px blurred
    out = render_bokeh(img, disp, 1.0, 12.0)
    assert torch.allclose(out[..., 14:34, 14:34], img[..., 14:34, 14:34], atol=1e-5)
    assert not torch.allclose(out[..., :10, :], img[..., :10, :], atol=0.05)      # the wall is blurred
    scatter = render_bokeh(img, disp, 1.0, 12.0, method="scatter")  # the baseline lets the wall bleed in
    assert (scatter[..., 14:34, 14:34] - img[..., 14:34, 14:34]).abs().max() > 0.05


def test_blurred_background_does_not_take_in_focus_foreground_colour():
    img, disp = two_planes(1.0, 0.5, bg=(0.1, 0.8, 0.2))
    out = render_bokeh(img, disp, 1.0, 12.0)
    ring = torch.ones(48, 48, dtype=torch.bool)
    ring[12:36, 12:36] = False
    ring[:8], ring[-8:], ring[:, :8], ring[:, -8:] = False, False, False, False
    assert torch.allclose(out[0][:, ring], torch.tensor([0.1, 0.8, 0.2])[:, None], atol=2e-3)


def disc_fraction_inside(radius, y, x, square):
    """Independent loop: share of the soft disc kernel of a pixel at (y, x) over the square."""
    R = int(math.ceil(radius)) + 1
    tot = ins = 0.0
    for dy in range(-R, R + 1):
        for dx in range(-R, R + 1):
            w = min(max(radius + 0.5 - math.hypot(dy, dx), 0.0), 1.0)
            tot += w
            if square[0] <= y + dy < square[1] and square[0] <= x + dx < square[1]:
                ins += w
    return ins / tot


def test_blurred_foreground_spreads_over_sharp_background():
    fg, bg = (0.9, 0.1, 0.1), (0.1, 0.8, 0.2)
    img, disp = two_planes(0.7, 0.5, fg=fg, bg=bg)                  # square 4 px blurred, wall in focus
    out = to_lin(render_bokeh(img, disp, 0.5, 20.0))
    fg_lin, bg_lin = torch.tensor(fg) ** GAMMA, torch.tensor(bg) ** GAMMA
    # outside the square its light falls on the wall with the share of its disc over the square;
    # inside, the rim turns see-through and shows the wall hidden behind it
    for y, x in ((24, 34), (24, 35), (24, 36), (24, 37), (34, 34), (24, 33), (24, 32), (24, 31), (15, 15)):
        frac = disc_fraction_inside(4.0, y, x, (14, 34))
        expected = frac * fg_lin + (1 - frac) * bg_lin
        assert torch.allclose(out[0, :, y, x], expected, atol=0.03), (y, x, frac)
    assert float(out[0, 0, 24, 36]) > bg_lin[0] + 0.1                  # red reaches 3 px past the edge


# ----------------------------------------------------------------------------- independent references


def scatter_reference(lin, s):
    """BokehMe's ``kernel_Render_updateOutput`` (classical_renderer/scatter.py) as plain loops:
    every pixel of radius r = |defocus| adds (0.5 + 0.5 tanh(4 (r - dist))) / (r^2 + 0.2) of its
    colour, and the weight itself, to every pixel of the square window of half-side int(r) + 1
    inside the image; bokeh = bokeh_cum / weight_cum."""
    _, _, H, W = lin.shape
    num, den = np.zeros((3, H, W)), np.zeros((H, W))
    L, S = lin[0].double().numpy(), s[0, 0].double().numpy()
    for y in range(H):
        for x in range(W):
            r = abs(S[y, x])
            for dy in range(-int(r) - 1, int(r) + 2):
                for dx in range(-int(r) - 1, int(r) + 2):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < H and 0 <= nx < W:
                        dist = math.sqrt(dy * dy + dx * dx)
                        w = (0.5 + 0.5 * math.tanh(4 * (r - dist))) / (r * r + 0.2)
                        den[ny, nx] += w
                        num[:, ny, nx] += w * L[:, y, x]
    return torch.from_numpy(num / den)[None]


def test_scatter_matches_loop_reference():
    g = torch.Generator().manual_seed(5)
    img = torch.rand(1, 3, 9, 10, generator=g, dtype=torch.float64)
    disp = torch.rand(1, 1, 9, 10, generator=g, dtype=torch.float64)
    for gamma in (GAMMA, 4.0):                       # 4 is BokehMe's default
        out = render_bokeh(img, disp, 0.5, 6.0, gamma=gamma, method="scatter")
        ref = scatter_reference(img ** gamma, coc_radius(disp, 0.5, 6.0))
        assert torch.allclose(out, ref.clamp(0, 1) ** (1 / gamma), atol=1e-6)


@pytest.mark.parametrize("radius", [3.0, 4.0])                    # radii of layers (layer_radii)
def test_layered_single_depth_is_normalised_convolution(radius):
    g = torch.Generator().manual_seed(6)
    img = torch.rand(1, 3, 12, 13, generator=g, dtype=torch.float64)
    disp = torch.full((1, 1, 12, 13), 0.5 + radius / 10, dtype=torch.float64)
    out = render_bokeh(img, disp, 0.5, 10.0)                        # one layer, exactly on the ladder
    k = aperture_kernel(radius, dtype=torch.float64).numpy()
    R = k.shape[0] // 2
    lin = (img ** GAMMA)[0].numpy()
    ref = np.zeros_like(lin)
    for y in range(12):
        for x in range(13):
            num, den = np.zeros(3), 0.0
            for dy in range(-R, R + 1):
                for dx in range(-R, R + 1):
                    if 0 <= y - dy < 12 and 0 <= x - dx < 13:
                        num += k[R + dy, R + dx] * lin[:, y - dy, x - dx]
                        den += k[R + dy, R + dx]
            ref[:, y, x] = num / den
    assert torch.allclose(out[0], torch.from_numpy(ref) ** (1 / GAMMA), atol=1e-6)


def test_layered_agrees_with_scatter_on_a_continuous_surface():
    # no depth edge: the layers add up, like the scatter (up to the quantised radii)
    g = torch.Generator().manual_seed(7)
    img = torch.rand(1, 3, 40, 40, generator=g)
    disp = torch.linspace(0.2, 0.8, 40).view(1, 1, 40, 1).expand(1, 1, 40, 40).contiguous()
    lay = render_bokeh(img, disp, 0.5, 10.0)
    sca = render_bokeh(img, disp, 0.5, 10.0, method="scatter")
    inner = (..., slice(8, 32), slice(8, 32))
    blur = (img[inner] - sca[inner]).abs().mean()
    assert (lay[inner] - sca[inner]).abs().mean() < 0.2 * blur


# ----------------------------------------------------------------------------- robustness


@pytest.mark.parametrize("method", METHODS)
def test_gradients_wrt_image_are_finite_and_nonzero(method):
    img, disp = two_planes(0.8, 0.3, size=24, square=(8, 16))
    img = img.clone().requires_grad_(True)
    out = render_bokeh(img, disp, 0.5, 10.0, method=method)
    (out * torch.linspace(0, 1, 24)).sum().backward()
    assert torch.isfinite(img.grad).all() and img.grad.abs().sum() > 0
    img.grad = None
    black = torch.zeros(1, 3, 24, 24, requires_grad=True)           # x ** (1/gamma) at 0
    render_bokeh(black, disp, 0.5, 10.0, method=method).sum().backward()
    assert torch.isfinite(black.grad).all()


@pytest.mark.parametrize("method", METHODS)
def test_no_nan_for_degenerate_inputs(method):
    g = torch.Generator().manual_seed(8)
    img = torch.rand(2, 3, 16, 16, generator=g)
    disp = torch.rand(2, 1, 16, 16, generator=g)
    for d, fd, K in ((disp, 0.5, 0.0), (torch.full_like(disp, 0.7), 0.2, 10.0), (disp, 0.0, 1e6),
                     (torch.zeros_like(disp), 0.5, torch.tensor([0.0, 1e9]))):
        out = render_bokeh(img, d, fd, K, method=method)
        assert out.shape == img.shape and torch.isfinite(out).all()
        assert out.min() >= 0 and out.max() <= 1
    huge = render_bokeh(img, torch.full_like(disp, 1.0), 0.0, 1e6, method=method)   # clamped to 16 px
    assert huge.std() < 0.5 * img.std()


def test_batch_and_per_image_parameters_match_single_calls():
    g = torch.Generator().manual_seed(9)
    img = torch.rand(2, 3, 24, 24, generator=g)
    disp = torch.linspace(0.1, 0.9, 24).view(1, 1, 1, 24).expand(2, 1, 24, 24).contiguous()
    both = render_bokeh(img, disp, torch.tensor([0.3, 0.6]), torch.tensor([10.0, 6.0]))
    one = render_bokeh(img[1:], disp[1:], 0.6, 6.0)
    assert torch.allclose(to_lin(both[1:]), to_lin(one), atol=1e-6)
    assert render_bokeh(img[0], disp[0], 0.3, 10.0).shape == (3, 24, 24)    # unbatched in, unbatched out


def test_focal_stack():
    g = torch.Generator().manual_seed(10)
    img, disp = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 1, 16, 16, generator=g)
    stack = focal_stack(img, disp, [0.2, 0.8], 4.0)
    assert stack.shape == (2, 2, 3, 16, 16)
    assert torch.allclose(stack[:, 1], render_bokeh(img, disp, 0.8, 4.0))
    per_image = focal_stack(img, disp, torch.tensor([[0.2, 0.8], [0.8, 0.2]]), 4.0)
    assert torch.allclose(per_image[1, 0], stack[1, 1])
    with pytest.raises(ValueError, match="focus_disparities"):
        focal_stack(img, disp, torch.zeros(3, 2), 4.0)


def test_highlight_boost_brightens_blurred_lights_only():
    img = torch.full((1, 3, 32, 32), 0.2)
    img[..., 16, 16] = 1.0
    disp = torch.full((1, 1, 32, 32), 0.8)
    plain = render_bokeh(img, disp, 0.5, 20.0)
    boosted = render_bokeh(img, disp, 0.5, 20.0, highlight=4.0)
    assert float(boosted[0, :, 16, 16].mean()) > float(plain[0, :, 16, 16].mean()) + 0.05
    assert torch.allclose(boosted[..., :4, :4], plain[..., :4, :4], atol=1e-6)
    focused = render_bokeh(img, torch.full_like(disp, 0.5), 0.5, 20.0, highlight=4.0)
    assert torch.allclose(focused, img, atol=1e-5)


def test_bad_input_is_rejected():
    img, disp = torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="image must be"):
        render_bokeh(torch.rand(1, 4, 8, 8), disp, 0.5, 1.0)
    with pytest.raises(ValueError, match="do not match"):
        render_bokeh(img, torch.rand(1, 1, 8, 9), 0.5, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        render_bokeh(img, torch.full((1, 1, 8, 8), float("nan")), 0.5, 1.0)
    with pytest.raises(ValueError, match="K must be >= 0"):
        render_bokeh(img, disp, 0.5, -1.0)
    with pytest.raises(ValueError, match="method"):
        render_bokeh(img, disp, 0.5, 1.0, method="gather")
    with pytest.raises(ValueError, match="blades"):
        render_bokeh(img, disp, 0.5, 1.0, blades=2)
    with pytest.raises(ValueError, match="focus_disparity"):
        render_bokeh(img, disp, torch.tensor([0.1, 0.2]), 1.0)
    with pytest.raises(ValueError, match="floating point"):
        render_bokeh((img * 255).to(torch.uint8), disp, 0.5, 1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", METHODS)
def test_cpu_equals_cuda(method):
    img, disp = two_planes(0.8, 0.3, size=32, square=(10, 22))
    cpu = render_bokeh(img, disp, 0.5, 12.0, method=method, blades=6)
    gpu = render_bokeh(img.cuda(), disp.cuda(), 0.5, 12.0, method=method, blades=6)
    assert gpu.device.type == "cuda"
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-4)


@pytest.mark.parametrize("kw", [{}, {"fill": False}, {"downsample": False},
                                {"blades": 6, "rotation": 0.3}])
def test_layered_autograd_and_in_place_paths_agree(kw):
    """_composite builds new tensors under autograd and updates buffers in place without it:
    the two must give the same picture (to float precision) on rooms with depth edges."""
    from lib.data.synthetic import synthetic_scene

    for seed in range(2):
        sc = synthetic_scene(seed, size=(40, 56))
        img, disp = sc["image"][None], (1 / sc["depth"].clamp(min=0.1))[None]
        for q in (0.2, 0.7):
            fd = float(disp.quantile(q))
            with torch.no_grad():
                in_place = bokeh.render_bokeh(img, disp, fd, 30.0, **kw)
            with torch.enable_grad():
                graph = bokeh.render_bokeh(img, disp.clone().requires_grad_(True), fd, 30.0, **kw)
            torch.testing.assert_close(graph.detach(), in_place, rtol=0, atol=1e-6)


def test_layered_steps_are_named_and_documented():
    for name in ("_layer_ranges", "_layer_box", "_layer_maps", "_hidden", "_blur_layer",
                 "_composite", "_layered"):
        fn = getattr(bokeh, name)
        assert fn.__doc__ and len(fn.__doc__.split()) >= 10, name
    assert bokeh.FILL_MARGIN_JUMPS > 0 and bokeh.FILL_MARGIN_SLOPE > 0 and bokeh.MAX_DOWNSAMPLE >= 2
