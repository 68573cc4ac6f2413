"""The notebooks of the course: finding them, their titles, their parameters and profiles.

A notebook's parameters are the names assigned in its cell tagged ``parameters``; their default
values are the ``quick`` profile. Other profiles (``full`` for a GPU, ``smoke`` for the tests) live
in ``notebooks/profiles.yaml``::

    02_model_and_training:
      full:  {steps: 20000, size: 256}
      smoke: {steps: 3, size: 32}

Order of precedence: the parameters cell < the profile < ``-p NAME VALUE`` on the command line.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lib.paths import notebooks_dir

PROFILES = ("quick", "full", "smoke")


@dataclass(frozen=True)
class Notebook:
    path: Path

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def number(self) -> str:
        return self.stem[:2]

    def cells(self) -> list[dict]:
        return json.loads(self.path.read_text())["cells"]

    @property
    def title(self) -> str:
        """The first markdown heading, without markup (the report's title)."""
        for cell in self.cells():
            if cell["cell_type"] != "markdown":
                continue
            for line in "".join(cell["source"]).splitlines():
                m = re.match(r"^#+\s+(.+?)\s*#*\s*$", line)
                if m:
                    return strip_markdown(m.group(1))
        return self.stem.replace("_", " ")

    def defaults(self) -> dict[str, Any]:
        """Names and default values of the ``parameters`` cell, in order."""
        for cell in self.cells():
            if cell["cell_type"] == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
                return parse_assignments("".join(cell["source"]), where=f"{self.path.name} parameters cell")
        raise ValueError(f"{self.path.name}: no cell tagged 'parameters' (papermill needs one)")


def strip_markdown(text: str) -> str:
    text = re.sub(r"\$([^$]*)\$", r"\1", text)
    text = re.sub(r"[*_`]", "", text)
    return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text).strip()


def parse_assignments(source: str, where: str = "cell") -> dict[str, Any]:
    """``name = literal`` lines of a parameters cell (comments allowed) -> {name: value}."""
    values: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError as e:
                raise ValueError(f"{where}: {node.targets[0].id} is not a literal value") from e
    return values


def find(selection: list[str] | None = None) -> list[Notebook]:
    """Notebooks by number or name prefix (``["02", "04"]``); all of them, in order, when empty."""
    found = sorted(p for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no notebooks NN_name.ipynb in {notebooks_dir()}")
    if not selection:
        return [Notebook(p) for p in found]
    chosen = []
    for key in selection:
        match = [p for p in found if p.stem == key or p.stem.startswith(key.zfill(2) if key.isdigit() else key)]
        if not match:
            names = ", ".join(p.stem for p in found)
            raise ValueError(f"no notebook matches {key!r}; the course has: {names}")
        chosen += [Notebook(p) for p in match if Notebook(p) not in chosen]
    return chosen


def profiles_file() -> Path:
    return notebooks_dir() / "profiles.yaml"


def profile_overrides(nb: Notebook, profile: str) -> dict[str, Any]:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
    if profile == "quick" or not profiles_file().exists():
        return {}
    table = yaml.safe_load(profiles_file().read_text()) or {}
    return dict((table.get(nb.stem) or {}).get(profile) or {})


def parse_value(text: str) -> Any:
    """A command-line value: a Python literal when it parses as one (3, 0.5, True, [1, 2]), else a string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _type_name(value: Any) -> str:
    return type(value).__name__


def coerce(name: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of the parameter's default; int -> float is allowed."""
    if default is None or isinstance(value, type(default)) and not (isinstance(value, bool) and not isinstance(default, bool)):
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, str):
        return str(value)
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(default)(value)
    raise ValueError(
        f"parameter {name!r} expects {_type_name(default)} (default {default!r}), got {value!r} ({_type_name(value)})"
    )


# Ranges of the parameters whose names say what they are (the same name means the same thing in
# every chapter). A value outside is refused before anything executes.
_COUNTS = {"batch_size", "width", "fusion_width", "gt_samples", "n_test", "n_train", "n_val",
           "n_labelled", "n_unlabelled", "n_minute", "n_folder", "n_draws", "n_pairs",
           "n_test_pairs", "n_scenes", "n_photo_crops", "max_points", "tile_batch", "val_every",
           "timing_batches", "grad_scales", "labelled_per_batch", "unlabelled_per_batch",
           "timing_size"}
_FRACTIONS = {"flip", "cutmix_p", "p_pinhole", "trim", "ignore_top", "si_lam", "silog_lam"}
_POSITIVE = {"lr", "head_lr", "aperture", "max_blur", "your_scale", "see_threshold",
             "silog_scale", "f_number"}
_NON_NEGATIVE = {"seed", "n_random", "sigma", "reach", "edge_threshold", "margin", "alpha",
                 "grad_alpha", "align_weight", "mask_weight", "consistency_weight",
                 "consistency_depth", "feature_weight"}
_MULTIPLES_OF_16 = {"process", "predict_size", "moto_size", "onnx_sizes"}


def check_range(name: str, value: Any) -> None:
    """Refuse a value outside the parameter's range (ValueError naming the valid range)."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if name in _COUNTS or name == "steps" or name.endswith("_steps"):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ValueError(f"parameter {name!r} must be an integer >= 1, got {value!r}")
    elif name in _FRACTIONS:
        if not (number(value) and 0 <= value <= 1):
            raise ValueError(f"parameter {name!r} is a fraction: it must be in [0, 1], got {value!r}")
    elif name == "max_shift":
        if not (number(value) and 0 <= value < 1):
            raise ValueError(f"parameter 'max_shift' must be in [0, 1), got {value!r}")
    elif name in _POSITIVE:
        if not (number(value) and value > 0):
            raise ValueError(f"parameter {name!r} must be > 0, got {value!r}")
    elif name in _NON_NEGATIVE:
        if not (number(value) and value >= 0):
            raise ValueError(f"parameter {name!r} must be >= 0, got {value!r}")
    elif name in _MULTIPLES_OF_16:
        flat = value if name != "onnx_sizes" else [v for hw in value for v in hw]
        if not all(isinstance(v, int) and v > 0 and v % 16 == 0 for v in flat):
            raise ValueError(f"parameter {name!r} must be sizes in pixels that are positive "
                             f"multiples of 16, got {value!r}")


def resolve(nb: Notebook, profile: str = "quick", overrides: dict[str, Any] | None = None) -> tuple[dict, dict]:
    """Final parameters for one run -> (all values, the ones that differ from the defaults).

    Unknown names, values of the wrong type and values outside their range (:func:`check_range`)
    are refused here, before anything executes.
    """
    defaults = nb.defaults()
    chosen = {**profile_overrides(nb, profile), **(overrides or {})}
    unknown = sorted(set(chosen) - set(defaults))
    if unknown:
        raise ValueError(
            f"{nb.stem}: unknown parameter(s) {', '.join(unknown)}; valid names: {', '.join(defaults)}"
        )
    if "profile" in defaults:
        chosen.setdefault("profile", profile)
    final = dict(defaults)
    for name, value in chosen.items():
        final[name] = coerce(name, value, defaults[name])
        check_range(name, final[name])
    changed = {k: v for k, v in final.items() if v != defaults[k]}
    return final, changed
