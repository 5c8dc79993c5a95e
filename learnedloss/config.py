"""The typed configuration of a learned loss and its on-disk JSON schema.

`LossConfig` fixes the architecture of a loss network. `config.json` in a checkpoint holds
that architecture plus free-form provenance (how the loss was made, what it scored), under a
schema version. Reading is strict: an unknown version, kind, key or value is an error that
names what was expected and what came.

``KINDS``, ``FEATURES_BY_KIND`` and ``DEFAULT_INPUTS`` are read from the kinds in
`learnedloss.kinds.KINDS` whenever they are looked up, so they include registered kinds:

- ``KINDS``: the names of the kinds this release can build, a tuple. A regression loss is a
  drop-in for ``nn.MSELoss``, a classification loss for ``nn.CrossEntropyLoss``, a
  policy-gradient loss for the REINFORCE surrogate ``-(log_prob * advantage).mean()``
  (docs/policy-gradient.md).
- ``FEATURES_BY_KIND``: the per-element features a loss network of each kind computes
  itself (`learnedloss.kinds.LossKind.features`; each kind's docstring says what they are).
  Any other name in ``inputs`` (a Python identifier, e.g. ``"x"`` for the model's input) is
  a *side input*: the caller passes it by keyword, ``loss(input, target, x=x)``, with the
  input's shape. Side inputs are how a loss reads more than (prediction, target), e.g. for
  loss shaping (docs/shaped-sine.md) or a time step and an advantage for a policy-gradient loss.
  Classification losses take none.
- ``DEFAULT_INPUTS``: the features a network of each kind reads when ``inputs`` is not
  given.
"""

from __future__ import annotations

import keyword
import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from learnedloss.errors import ConfigError

SCHEMA_VERSION = 1
"""Version of the `config.json` layout written by this release."""

SUPPORTED_SCHEMA_VERSIONS = (1,)

ACTIVATIONS = ("relu", "elu", "tanh", "softplus", "gelu", "silu")
"""Hidden-layer activations a loss network may use."""

OUTPUT_ACTIVATIONS = ("softplus", "identity", "square", "huber")
"""Output activations: ``softplus`` (ML3's choice, keeps the loss positive), ``identity``,
``square`` (non-negative with a zero minimum) or ``huber`` (Huber's function with δ = 1:
h²/2 for |h| <= 1, |h| - 1/2 beyond; non-negative, zero minimum, bounded slope)."""

RESIDUAL_FORMS = ("add", "scale", "weight", "baseline")
"""How a residual network combines the standard loss's term with its own output (see
`LossConfig.residual_form`)."""


PARAMETERIZATIONS = ("mlp", "grid", "taylor", "monotone")
"""What computes the network's per-element output (`learnedloss.networks`): ``mlp`` (ML3's
MLP), ``grid`` (a spline on a fixed grid of knots, `learnedloss.networks.GridNetwork`),
``taylor`` (a low-order polynomial after TaylorGLO, `learnedloss.networks.TaylorNetwork`) or
``monotone`` (a loss non-decreasing in the error's size by construction,
`learnedloss.networks.MonotoneNetwork`)."""

GRID_PARAMETERIZATIONS = ("grid", "monotone")
"""The parameterizations whose knots ``grid_knots`` and ``grid_range`` place."""

MONOTONE_OUTPUTS = {"regression": "square", "classification": "identity"}
"""The output activation a ``monotone`` loss of each kind has: it scales the squared error
or the cross-entropy term (`learnedloss.networks.MonotoneNetwork`)."""

MONOTONE_MAGNITUDES = {"regression": "scaled_residual", "classification": "scaled_nll"}
"""The first input of a ``monotone`` loss of each kind: the error's magnitude over the call's
robust scale, proportional to the standard term it scales."""

PROGRESS_INPUT = "progress"
"""The input any kind's loss may read that is not computed from the call: how far training
has come, from 0 at the first step to 1 at the end, the same for every element. A
`learnedloss.LearnedLoss` holds it and ``loss.progress(step, total)`` sets it; the inner
loops of meta-training and evaluation set it at every step (docs/progress.md). It is never a
side input: nothing passes it per call."""

UNSCHEDULED_PROGRESS = 1.0
"""The progress a loss reads until ``loss.progress(step, total)`` is first called (and that a
direct functional call reads unless given one): the shape a scheduled training run ends
with. docs/progress.md reports each bundled progress loss both ways, scheduled and not."""

GRID_DEFAULT_RANGES = {
    "residual": (-4.0, 4.0),
    "input": (-4.0, 4.0),
    "target": (-4.0, 4.0),
    "log_prob": (-16.0, 0.0),
    "prob": (0.0, 1.0),
    "advantage": (-4.0, 4.0),
    PROGRESS_INPUT: (0.0, 1.0),
}
"""The grid's range per feature when ``grid_range`` is not given (``(-4, 4)`` for others).
Classification targets (one-hot or probabilities) use ``(0, 1)``."""

MONOTONE_DEFAULT_RANGE = (0.0, 16.0)
"""A monotone loss's magnitude axis when ``grid_range`` is not given: 16 robust scales."""

GRID_DEFAULT_KNOTS = (33, 9)
"""Knots on the spline axis (the first input) and on the second axis, when ``grid_knots``
is not given; a classification ``target`` axis gets 2 knots (0 and 1)."""

MAX_HIDDEN_LAYERS = 64
"""The most hidden layers a loss network may have (ML3's reference has 2)."""
MAX_LAYER_SIZE = 2**31 - 1
"""The widest hidden layer a config may name. Wider is never a loss network; narrower but
still huge sizes are refused by the weights' shapes when a checkpoint is loaded, and by
memory when a loss is built."""
MAX_GRID_KNOTS = 2**22
"""The most knots a grid may have, over its axes together (4M values, 16 MiB in float32;
the bundled grids have at most 257 x 41)."""


class KindRules(Protocol):
    """What the schema reads from a loss kind (`learnedloss.kinds.LossKind` provides it).

    The kinds sit above this module and enter `KIND_REGISTRY` when `learnedloss.kinds` is
    imported (which ``import learnedloss`` does), so the schema checks a config against them
    without importing them.
    """

    name: str
    features: tuple[str, ...]
    default_inputs: tuple[str, ...]
    residual_forms: tuple[str, ...]
    takes_side_inputs: bool

    def check_config(self, config: LossConfig) -> None: ...


KIND_REGISTRY: dict[str, Any] = {}
"""The kinds this release can build, by name, in the order error messages list them: the
registry `learnedloss.kinds.KINDS` is (the same dict), filled by `learnedloss.kinds`."""


def registered_kind(name: str) -> Any:
    """The kind of this name in `KIND_REGISTRY` (`learnedloss.kinds.loss_kind` is the public
    spelling).

    Raises:
        ConfigError: no kind has this name; the message lists those that do.
    """
    try:
        return KIND_REGISTRY[name]
    except (KeyError, TypeError):  # TypeError: an unhashable value from a malformed file
        raise ConfigError(f"kind must be one of {list(KIND_REGISTRY)}, got {name!r}") from None


def __getattr__(name: str) -> Any:
    """``KINDS``, ``FEATURES_BY_KIND`` and ``DEFAULT_INPUTS``, derived from the kinds."""
    if name == "KINDS":
        return tuple(KIND_REGISTRY)
    if name == "FEATURES_BY_KIND":
        return {kind_name: kind.features for kind_name, kind in KIND_REGISTRY.items()}
    if name == "DEFAULT_INPUTS":
        return {kind_name: kind.default_inputs for kind_name, kind in KIND_REGISTRY.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_TOP_LEVEL_KEYS = {
    "schema_version",
    "library_name",
    "library_version",
    "kind",
    "inputs",
    "input_convention",
    "hidden_sizes",
    "activation",
    "output_activation",
    "bias",
    "residual",
    "residual_form",
    "parameterization",
    "grid_knots",
    "grid_range",
    "taylor_order",
    "metadata",
}


@dataclass(frozen=True)
class LossConfig:
    """Architecture of a learned loss network.

    The network is an MLP applied to each element's feature vector, e.g. the pair
    (prediction, target) for a regression loss, as in ML3 (Bechtle et al., ICPR 2021).

    Args:
        kind: the name of the kind in `learnedloss.kinds.KINDS`, which says what the loss
            replaces: ``regression`` is a drop-in for ``nn.MSELoss``, ``classification``
            for ``nn.CrossEntropyLoss`` (docs/classification.md), ``policy_gradient`` for
            the REINFORCE surrogate (docs/policy-gradient.md). `loss_kind` returns the
            kind itself.
        hidden_sizes: widths of the hidden layers; ML3's regression reference uses (50, 50).
        activation: hidden activation, one of `ACTIVATIONS`.
        output_activation: output activation, one of `OUTPUT_ACTIVATIONS`.
        bias: whether the linear layers have biases (ML3's reference: no bias).
        inputs: the per-element features the network reads, in order, from the kind's
            ``features`` (default: its ``default_inputs``: ML3's (input, target) for
            regression, (log_prob, target) for classification). Adding ``"residual"`` makes
            shapes that depend on input - target (robust losses) easy to learn. Regression
            and policy-gradient losses may also name side inputs (see the module's
            ``FEATURES_BY_KIND``). Any kind may read ``"progress"`` (`PROGRESS_INPUT`),
            training progress from 0 to 1, which ``loss.progress(step, total)`` sets.
        residual: add the standard loss's own term to the network's last pre-activation and
            start the last layer at zero, so the loss starts as exactly the standard loss and
            the network learns a correction (e.g. a clipped residual, a robust loss). The
            term is ``input - target`` for regression (with ``output_activation="square"``
            the loss equals the squared error, with ``"huber"`` the Huber loss),
            ``-target * log_prob`` for classification (with ``"identity"`` the loss equals
            ``F.cross_entropy``) and ``-log_prob * advantage`` for policy gradient (with
            ``"identity"`` the loss equals the REINFORCE surrogate).
        residual_form: with ``residual``, how the network's output ``h`` corrects the
            standard term ``r``: ``"add"`` (``r + h``, the default) or ``"scale"``
            (``(1 + h) * r``). A scaled correction vanishes where ``r`` does, so the loss
            keeps the standard loss's minimum at a perfect prediction, wherever the
            network moves the rest of the landscape (docs/shaped-sine.md). ``"weight"``
            (regression only) multiplies the standard loss by
            weights ``N * softmax(h)`` over the N elements of each call: they average 1,
            so the network can move weight between elements (down-weight outliers) but
            cannot scale the whole loss up, which meta-training otherwise does, since a
            steeper loss acts as a larger learning rate (docs/sine.md). ``"baseline"``
            (policy gradient only) subtracts ``h`` from the advantage inside the
            REINFORCE term, ``-log_prob * (advantage - h)``: the network is a learned
            baseline (an advantage correction) per step (docs/policy-gradient.md).
        parameterization: what computes the per-element output ``h`` that the residual form
            and output activation turn into the loss: ``"mlp"`` (default; ML3's MLP, sized by
            ``hidden_sizes``, ``activation`` and ``bias``), ``"grid"`` (a cubic spline on a
            fixed grid of knots over one or two features, a few times ``nn.HuberLoss``'s cost
            when frozen) or ``"taylor"`` (a polynomial of degree ``taylor_order`` after
            TaylorGLO) or ``"monotone"`` (a loss that only grows with the error's size, by
            construction). The MLP fields are ignored by the others. See
            docs/parameterizations.md.
        grid_knots: ``"grid"`` and ``"monotone"`` only: knots per input, in ``inputs``'
            order (at least 3 on the first, spline, axis and 2 on the second, linear, axis); default
            `GRID_DEFAULT_KNOTS`.
        grid_range: ``"grid"`` and ``"monotone"`` only: ``(low, high)`` of the knots per
            input, in ``inputs``' order; default from `GRID_DEFAULT_RANGES` (a monotone
            loss's magnitude axis: `MONOTONE_DEFAULT_RANGE`). Outside it the spline continues
            linearly and the second axis is clamped.
        taylor_order: ``"taylor"`` only: the polynomial's degree, 1 to 4 (default 3).

    Examples:
        >>> from learnedloss import LossConfig
        >>> LossConfig(hidden_sizes=(32, 32), activation="elu").in_features
        2
    """

    kind: str = "regression"
    hidden_sizes: tuple[int, ...] = (50, 50)
    activation: str = "relu"
    output_activation: str = "softplus"
    bias: bool = False
    residual: bool = False
    inputs: tuple[str, ...] | None = None
    residual_form: str = "add"
    parameterization: str = "mlp"
    grid_knots: tuple[int, ...] | None = None
    grid_range: tuple[tuple[float, float], ...] | None = None
    taylor_order: int | None = None

    def __post_init__(self) -> None:
        kind = registered_kind(self.kind)
        sizes = self.hidden_sizes
        if not isinstance(sizes, (tuple, list)) or not all(
            isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_LAYER_SIZE
            for s in sizes
        ):
            raise ConfigError(
                f"hidden_sizes must be a sequence of positive ints of at most {MAX_LAYER_SIZE}, "
                f"got {_shown(sizes)}"
            )
        if len(sizes) > MAX_HIDDEN_LAYERS:
            raise ConfigError(
                f"hidden_sizes may name at most {MAX_HIDDEN_LAYERS} layers, got {len(sizes)}"
            )
        object.__setattr__(self, "hidden_sizes", tuple(sizes))
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("output_activation", self.output_activation, OUTPUT_ACTIVATIONS)
        for flag in ("bias", "residual"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be a bool, got {getattr(self, flag)!r}")
        _check_choice("residual_form", self.residual_form, RESIDUAL_FORMS)
        if self.residual_form != "add" and not self.residual:
            raise ConfigError(
                f"residual_form {self.residual_form!r} needs residual=True; without a residual "
                "there is no standard term to scale"
            )
        if self.residual_form not in kind.residual_forms:
            allowing = [
                k.name for k in KIND_REGISTRY.values() if self.residual_form in k.residual_forms
            ]
            raise ConfigError(
                f"residual_form {self.residual_form!r} is for {_and(allowing)} "
                f"losses, got kind {self.kind!r}"
            )
        allowed = (*kind.features, PROGRESS_INPUT)
        if self.inputs is None:
            object.__setattr__(self, "inputs", kind.default_inputs)
        inputs = tuple(self.inputs) if isinstance(self.inputs, (list, tuple)) else None
        if (
            not inputs
            or not all(
                isinstance(name, str) and (name in allowed or _is_feature_name(name))
                for name in inputs
            )
            or len(set(inputs)) != len(inputs)  # hashable: all are strings
        ):
            raise ConfigError(
                f"inputs must be distinct feature names, each one of {list(allowed)} for kind "
                f"{self.kind!r} or a side input named by a Python identifier, got {self.inputs!r}"
            )
        object.__setattr__(self, "inputs", inputs)
        if not kind.takes_side_inputs and self.side_inputs:
            taking = [
                k.name.replace("_", "-") for k in KIND_REGISTRY.values() if k.takes_side_inputs
            ]
            raise ConfigError(
                f"inputs {list(self.side_inputs)} are not {self.kind} features "
                f"{list(allowed)}; side inputs are supported by {_and(taking)} losses only"
            )
        self._check_parameterization()
        kind.check_config(self)

    def _check_parameterization(self) -> None:
        _check_choice("parameterization", self.parameterization, PARAMETERIZATIONS)
        p = self.parameterization
        owners = (
            ("grid_knots", GRID_PARAMETERIZATIONS),
            ("grid_range", GRID_PARAMETERIZATIONS),
            ("taylor_order", ("taylor",)),
        )
        for name, owned_by in owners:
            owner = " or ".join(repr(o) for o in owned_by)
            if p not in owned_by and getattr(self, name) is not None:
                raise ConfigError(
                    f"{name} is a setting of the {owner} parameterization, got "
                    f"{name}={getattr(self, name)!r} with parameterization {p!r}"
                )
        if p in GRID_PARAMETERIZATIONS:
            self._check_grid()
        if p == "monotone":
            self._check_monotone()
        if p == "taylor":
            order = 3 if self.taylor_order is None else self.taylor_order
            if not isinstance(order, int) or isinstance(order, bool) or not 1 <= order <= 4:
                raise ConfigError(f"taylor_order must be an int from 1 to 4, got {order!r}")
            object.__setattr__(self, "taylor_order", order)

    def _check_grid(self) -> None:
        n = len(self.inputs)
        if n > 2:
            raise ConfigError(
                f"a grid loss reads one or two inputs (a spline over the first, linear "
                f"interpolation over the second), got {n}: {list(self.inputs)}"
            )
        class_target = [name == "target" and self.kind == "classification" for name in self.inputs]
        knots = self.grid_knots
        if knots is None:
            knots = tuple(2 if class_target[i] else GRID_DEFAULT_KNOTS[i] for i in range(n))
        if (
            not isinstance(knots, (list, tuple))
            or len(knots) != n
            or not all(isinstance(k, int) and not isinstance(k, bool) for k in knots)
            or knots[0] < 3
            or (n == 2 and knots[1] < 2)
            or math.prod(knots) > MAX_GRID_KNOTS
        ):
            raise ConfigError(
                f"grid_knots must be {n} int(s), one per input {list(self.inputs)}, at "
                f"least 3 on the first (spline) axis and 2 on the second, and at most "
                f"{MAX_GRID_KNOTS} knots together, got {_shown(knots)}"
            )
        object.__setattr__(self, "grid_knots", tuple(knots))
        ranges = self.grid_range
        if ranges is None:
            ranges = tuple(
                (0.0, 1.0) if class_target[i] else GRID_DEFAULT_RANGES.get(name, (-4.0, 4.0))
                for i, name in enumerate(self.inputs)
            )
            if self.parameterization == "monotone":
                ranges = (MONOTONE_DEFAULT_RANGE, *ranges[1:])
        parsed = []
        if isinstance(ranges, (list, tuple)) and len(ranges) == n:
            for pair in ranges:
                if (
                    isinstance(pair, (list, tuple))
                    and len(pair) == 2
                    and all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                        for v in pair
                    )
                    and pair[0] < pair[1]
                ):
                    parsed.append((float(pair[0]), float(pair[1])))
        if len(parsed) != n or len(ranges) != n:
            raise ConfigError(
                f"grid_range must be {n} (low, high) pair(s) of finite numbers with low < "
                f"high, one per input {list(self.inputs)}, got {ranges!r}"
            )
        object.__setattr__(self, "grid_range", tuple(parsed))

    def _check_monotone(self) -> None:
        magnitude = MONOTONE_MAGNITUDES.get(self.kind)
        output = MONOTONE_OUTPUTS.get(self.kind)
        if (
            magnitude is None
            or self.inputs[0] != magnitude
            or not self.residual
            or self.residual_form != "scale"
            or self.output_activation != output
        ):
            raise ConfigError(
                "a monotone loss is a regression or classification loss with residual=True, "
                "residual_form='scale', output_activation 'square' (regression) or 'identity' "
                "(classification), whose first input is 'scaled_residual' (regression) or "
                f"'scaled_nll' (classification); got kind={self.kind!r}, inputs="
                f"{list(self.inputs)}, residual={self.residual!r}, residual_form="
                f"{self.residual_form!r}, output_activation={self.output_activation!r}"
            )
        if self.grid_range[0][0] != 0.0:
            raise ConfigError(
                "a monotone loss's first axis is a magnitude: its grid_range must start at 0, "
                f"got {list(self.grid_range[0])}"
            )

    @property
    def loss_kind(self) -> Any:
        """The kind object named by ``kind`` (see `learnedloss.kinds`): its features, its
        standard term, how it reads a call's arguments, and its model-card text.

        Examples:
            >>> from learnedloss import LossConfig
            >>> LossConfig().loss_kind.replaces
            'torch.nn.MSELoss()'
        """
        return registered_kind(self.kind)

    @property
    def in_features(self) -> int:
        """Number of per-element features the network reads."""
        return len(self.inputs)

    @property
    def side_inputs(self) -> tuple[str, ...]:
        """The inputs the caller passes by keyword (those the loss does not compute)."""
        features = (*self.loss_kind.features, PROGRESS_INPUT)
        return tuple(name for name in self.inputs if name not in features)

    @property
    def reads_progress(self) -> bool:
        """Whether the loss reads training progress (`PROGRESS_INPUT`)."""
        return PROGRESS_INPUT in self.inputs

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready architecture fields (without schema version or metadata).

        ``residual_form`` is written only when it is not the default ``"add"``, so files of
        losses that do not use it stay readable by releases that predate it."""
        out = asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        out["inputs"] = list(self.inputs)
        if self.residual_form == "add":
            del out["residual_form"]
        for name in ("grid_knots", "grid_range", "taylor_order"):
            if out[name] is None:
                del out[name]
        if self.parameterization == "mlp":  # files of MLP losses stay readable by older releases
            del out["parameterization"]
        else:
            if self.grid_knots is not None:
                out["grid_knots"] = list(self.grid_knots)
            if self.grid_range is not None:
                out["grid_range"] = [list(pair) for pair in self.grid_range]
        return out


def _shown(value: Any) -> str:
    """``repr(value)``, cut to 200 characters (a value from a hostile file may be huge)."""
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _is_feature_name(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")


def _and(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c`` (``no`` for none)."""
    if not names:
        return "no"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")


def config_to_json_dict(
    config: LossConfig, metadata: dict[str, Any], library_version: str
) -> dict[str, Any]:
    """Build the content of ``config.json`` for a loss with this architecture and metadata."""
    check_metadata(metadata)
    return {
        "schema_version": SCHEMA_VERSION,
        "library_name": "learnedloss",
        "library_version": library_version,
        "input_convention": "elementwise",
        **config.to_dict(),
        "metadata": metadata,
    }


def config_from_json_dict(data: Any, source: str = "config.json") -> tuple[LossConfig, dict]:
    """Parse and validate the content of ``config.json``.

    Returns:
        The architecture and the metadata dict.

    Raises:
        ConfigError: for an unknown schema version, kind or key, or a malformed value.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
    if data.get("library_name") != "learnedloss":
        raise ConfigError(
            f"{source}: expected library_name 'learnedloss', got {data.get('library_name')!r}; "
            "this is not a learnedloss checkpoint"
        )
    version = data.get("schema_version")
    if isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS:  # True == 1
        raise ConfigError(
            f"{source}: unknown schema_version {version!r}; this release of learnedloss reads "
            f"{list(SUPPORTED_SCHEMA_VERSIONS)}. Upgrade learnedloss to load it."
        )
    unknown = sorted(set(data) - _TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown keys {unknown} for schema_version {version}")
    missing = sorted(
        {"kind", "hidden_sizes", "activation", "output_activation", "bias", "residual", "inputs"}
        - set(data)
    )
    if missing:
        raise ConfigError(f"{source}: missing keys {missing}")
    for key in ("kind", "activation", "output_activation", "residual_form", "input_convention"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{source}: {key} must be a string, got {data[key]!r}")
    if not isinstance(data["hidden_sizes"], list):
        raise ConfigError(
            f"{source}: hidden_sizes must be a list of positive ints, got {data['hidden_sizes']!r}"
        )
    if not isinstance(data["inputs"], list):
        raise ConfigError(f"{source}: inputs must be a list of names, got {data['inputs']!r}")
    if data.get("input_convention", "elementwise") != "elementwise":
        raise ConfigError(
            f"{source}: unknown input_convention {data['input_convention']!r}, "
            "expected 'elementwise'"
        )
    try:
        config = LossConfig(
            kind=data["kind"],
            hidden_sizes=tuple(data["hidden_sizes"]),
            activation=data["activation"],
            output_activation=data["output_activation"],
            bias=data["bias"],
            residual=data["residual"],
            inputs=data["inputs"],
            residual_form=data.get("residual_form", "add"),
            **_parameterization_fields(data),
        )
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    metadata = data.get("metadata", {})
    try:
        check_metadata(metadata)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return config, metadata


MAX_METADATA_DEPTH = 32
"""How deeply metadata may nest dicts and lists (the metadata dict itself is level 1).

Provenance tables are two or three levels deep; the bound keeps a malformed or hostile
``config.json`` from exhausting the interpreter's recursion limit while it is checked,
written or rendered."""


def _parameterization_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The ``parameterization`` keys of ``config.json`` as `LossConfig` arguments (absent:
    the MLP, as in files written before parameterizations existed)."""
    out: dict[str, Any] = {}
    if "parameterization" in data:
        if not isinstance(data["parameterization"], str):
            raise ConfigError(
                f"parameterization must be a string, got {data['parameterization']!r}"
            )
        out["parameterization"] = data["parameterization"]
    if "grid_knots" in data:
        knots = data["grid_knots"]
        out["grid_knots"] = tuple(knots) if isinstance(knots, list) else knots
    if "grid_range" in data:
        ranges = data["grid_range"]
        out["grid_range"] = (
            tuple(tuple(p) if isinstance(p, list) else p for p in ranges)
            if isinstance(ranges, list)
            else ranges
        )
    if "taylor_order" in data:
        out["taylor_order"] = data["taylor_order"]
    return out


def check_metadata(metadata: Any) -> None:
    """Check that metadata is a JSON object of finite, JSON-native values.

    Raises:
        ConfigError: a value that is not JSON (a datetime, a tensor, NaN), a non-string key,
            or nesting deeper than `MAX_METADATA_DEPTH` levels.
    """
    if not isinstance(metadata, dict):
        raise ConfigError(f"metadata must be a dict, got {type(metadata).__name__}")
    _check_json_value(metadata, "metadata", 1)


def _check_json_value(value: Any, where: str, depth: int) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where} is {value}; metadata values must be finite")
        return
    if isinstance(value, (list, tuple, dict)) and depth > MAX_METADATA_DEPTH:
        raise ConfigError(
            f"metadata nests dicts and lists deeper than {MAX_METADATA_DEPTH} levels (at "
            f"{where[:80]}{'...' if len(where) > 80 else ''}); flatten it"
        )
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json_value(item, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where} has a non-string key {key!r}")
            _check_json_value(item, f"{where}.{key}", depth + 1)
        return
    raise ConfigError(
        f"{where} is a {type(value).__name__}; metadata holds only JSON values "
        "(dict, list, str, int, float, bool, None)"
    )
