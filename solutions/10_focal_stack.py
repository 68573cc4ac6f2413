# %% [markdown]
# # Solutions to chapter 10 · Focal stacks

# %%
import torch

from lib import bokeh

K = 20.0  # px m


def consistent(d_true, focus):
    """The disparities (>= 0) whose blur equals the true blur in every slice: each slice
    allows d_f - b/K and d_f + b/K; a candidate must be allowed by all of them."""
    found = None
    for d_f in focus:
        b = bokeh.coc_radius(torch.tensor(d_true), d_f, K).abs().item()
        allowed = {round(c, 5) for c in (d_f - b / K, d_f + b / K) if c >= 0}
        found = allowed if found is None else found & allowed
    return sorted(found)


# %% [markdown]
# ## Exercise 1
#
# *One slice focused at $d_f = 1/3$ m⁻¹ (3 m) shows a blur of $b$ pixels. Which disparities
# could the point have? And with a second slice at $d_f' = 1/1.5$?*
#
# $b = K|d - d_f|$ gives $d = d_f \pm b/K$: two candidates, one in front of the focus plane, one
# behind. The second slice gives $d = d_f' \pm b'/K$; the true $d$ is the only value in both
# pairs (the other two coincide only if $d_f = d_f'$). For a point at 2 m ($d = 0.5$):
# $b = 20 \cdot |0.5 - 0.333| = 3.33$ px, candidates $0.5$ and $0.167$ (6 m); the 1.5 m slice
# gives $0.5$ and $0.833$: only $0.5$ is shared.

# %%
one = consistent(0.5, [1 / 3])
two = consistent(0.5, [1 / 3, 1 / 1.5])
print(f"one slice: {one}; two slices: {two}")
assert len(one) == 2 and abs(one[0] - 1 / 6) < 2e-3 and abs(one[1] - 0.5) < 2e-3
assert len(two) == 1 and abs(two[0] - 0.5) < 2e-3

# %% [markdown]
# ## Exercise 2
#
# *When is one slice enough?*
#
# When the mirror candidate $d_f - b/K = 2 d_f - d$ is negative, i.e. $d > 2 d_f$: nearer than
# half the focus distance, the point can only be in front. For the far slice focused at 6 m,
# every point nearer than 3 m is unambiguous from that slice alone.

# %%
for d_true in (0.2, 0.34, 0.5, 0.8):  # 5 m, 2.9 m, 2 m, 1.25 m
    found = consistent(d_true, [1 / 6])
    print(f"d = {d_true}: {len(found)} candidate(s)")
    assert len(found) == (1 if d_true > 2 / 6 else 2)

# %% [markdown]
# ## Exercise 3
#
# *A point exactly in the focus plane of one slice gives no blur there. Is its depth then
# known, from that slice, better or worse than elsewhere?*
#
# In principle it is exact: $b = 0$ has the single solution $d = d_f$. In practice a network
# cannot tell a blur below about one pixel from no blur, and the blur is below a pixel for every
# disparity within $1/K$ of the focus plane: a band of width $2/K$ in disparity that all looks
# sharp. With $K = 20$ px·m (an illustrative value; chapter 10's rooms each have their own
# $K = f_\text{px} A$) and the focus at 3 m, that band runs from 2.6 m to 3.5 m. So depth is
# resolved *worse* right at a focus plane than a little off it, where the blur is measurable;
# slices at several distances keep every depth away from at least some focus planes.

# %%
d = torch.linspace(0.0, 1.0, 100_001)  # disparities, step 1e-5 1/m
sharp = d[bokeh.coc_radius(d, 1 / 3.0, K).abs() < 1.0]
width = (sharp.max() - sharp.min()).item()
near, far = 1 / sharp.max().item(), 1 / sharp.min().item()
print(
    f"blur under 1 px for disparities {sharp.min():.4f} to {sharp.max():.4f} 1/m "
    f"(width {width:.4f} = 2/K = {2 / K}): {near:.2f} m to {far:.2f} m look sharp"
)
assert abs(width - 2 / K) < 1e-4 and 2.55 < near < 2.7 and 3.45 < far < 3.6

# %% [markdown]
# ## Exercise 4 (an experiment)
#
# *Rerun with `-p focus_distances [3.0]` (a single slice): what do you expect the stack model to
# gain over the single-image model now, and why?*
#
# `python -m lib.course run 10 -p focus_distances "[3.0]"`. One slice leaves the sign
# ambiguity of exercise 1 for every point farther than half the focus distance (exercise 2):
# blur says *how far from 3 m*, not on which side. Expect a smaller gain than with three
# slices, concentrated on near objects (nearer than 1.5 m, where one slice is unambiguous);
# whether it beats the single-image model at all must be read against the spread over seeds.
# The cell below counts the ambiguous disparities for one slice and for the default three.

# %%
grid = [0.1 * k for k in range(1, 11)]  # 10 m to 1 m
one_slice = sum(len(consistent(d, [1 / 3.0])) > 1 for d in grid)
three = sum(len(consistent(d, [1 / 1.5, 1 / 3.0, 1 / 6.0])) > 1 for d in grid)
print(
    f"ambiguous depths out of {len(grid)}: one slice {one_slice}, three slices {three}"
)
assert three == 0 and one_slice > 0
