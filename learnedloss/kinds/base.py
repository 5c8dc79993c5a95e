"""`LossKind`: what a learned loss replaces and how it reads its arguments.

A learned loss is a kind and a network. The network (`learnedloss.networks`) scores feature
vectors and knows nothing about what they mean; the kind says which standard loss the learned
loss stands in for, checks a call's arguments, turns them into per-element features, gives the
standard loss's own term (the start of a residual loss), and says how per-element values
become the per-sample losses that the reduction averages. `learnedloss.loss.LearnedLoss` holds
no kind-specific code: it asks its config's kind.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from learnedloss.errors import LossInputError

if TYPE_CHECKING:
    from learnedloss.config import LossConfig


class LossKind(abc.ABC):
    """One kind of learned loss: a drop-in for one standard loss.

    `learnedloss.kinds.KINDS` holds one instance of each kind by name; ``LossConfig.kind``
    names one (the name is what ``config.json`` stores) and ``LossConfig.loss_kind`` returns
    it. A loss of a kind computes::

        features, valid = kind.element_features(input, target, side_inputs, ...)
        skip, multiplier = kind.standard_term(features)     # residual losses only
        per_element = network(stack(features[name] for name in config.inputs), skip, multiplier)
        loss = reduce(kind.per_sample(per_element), reduction, valid)

    A new kind is one subclass, registered with `learnedloss.kinds.register_kind`. It must
    provide:

    - ``name``: the string ``LossConfig.kind`` and ``config.json`` hold.
    - ``features``: the per-element features the loss computes itself; ``LossConfig.inputs``
      may name these and, where ``takes_side_inputs``, side inputs the caller passes by
      keyword.
    - ``default_inputs``: the features the network reads when ``inputs`` is not given.
    - ``replaces``, ``call`` and ``starts_as``: the model card's text: the standard loss the
      kind stands in for, the usage line, and what a residual loss starts as.
    - `element_features`: check a call's arguments, and return its per-element features (one
      tensor per name in ``features``, all of one shape, in the network's dtype) and the mask
      of samples that count (None: all).
    - `standard_term`: the standard loss's per-element term ``skip`` that a residual loss adds
      to its network's output (and the ``multiplier`` of the ``"baseline"`` form).
    - `standard_loss`: the standard loss's own per-element value, which the loss takes where
      an element's features are not finite (default: ``skip``).

    and may override:

    - ``residual_forms``: the ``LossConfig.residual_form`` values it allows, a subset of
      `learnedloss.config.RESIDUAL_FORMS` (default ``("add", "scale")``).
    - ``takes_side_inputs`` (default True) and ``uses_ignore_index`` (default False).
    - ``arguments``: the positional arguments of the usage line written for a loss with side
      inputs (default ``"prediction, target"``).
    - `per_sample`: per-element values to per-sample losses (default: unchanged).
    - `check_config`: further rules on a config of this kind (default: none).

    `ElementwiseKind` implements `element_features` for kinds whose ``input`` and ``target``
    are two same-shaped tensors read one element at a time.

    Examples:
        >>> from learnedloss import LossConfig
        >>> kind = LossConfig(kind="classification").loss_kind
        >>> kind.default_inputs, kind.replaces
        (('log_prob', 'target'), 'torch.nn.CrossEntropyLoss()')
    """

    name: ClassVar[str]
    """The kind's name, as ``LossConfig.kind`` and ``config.json`` hold it."""

    features: ClassVar[tuple[str, ...]]
    """The per-element features a loss of this kind computes itself."""

    default_inputs: ClassVar[tuple[str, ...]]
    """The features a network reads when ``LossConfig.inputs`` is not given."""

    residual_forms: ClassVar[tuple[str, ...]] = ("add", "scale")
    """The residual forms a loss of this kind may use."""

    takes_side_inputs: ClassVar[bool] = True
    """Whether ``LossConfig.inputs`` may name side inputs the caller passes by keyword."""

    uses_ignore_index: ClassVar[bool] = False
    """Whether the loss reads ``ignore_index`` (``nn.CrossEntropyLoss``'s convention)."""

    replaces: ClassVar[str]
    """The standard loss a loss of this kind replaces, as code (for the model card)."""

    call: ClassVar[str]
    """The model card's usage line for a loss without side inputs."""

    arguments: ClassVar[str] = "prediction, target"
    """The positional arguments of the usage line for a loss with side inputs."""

    starts_as: ClassVar[str]
    """What a residual loss of this kind starts as (for the model card)."""

    @abc.abstractmethod
    def element_features(
        self,
        input: Any,
        target: Any,
        side_inputs: dict[str, Any],
        *,
        config: LossConfig,
        param_dtype: torch.dtype,
        ignore_index: int,
        check_finite: bool,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Check one call's arguments and compute its per-element features.

        Args:
            input: the loss's first argument, unchecked.
            target: the loss's second argument, unchecked.
            side_inputs: the keyword arguments of the call, unchecked.
            config: the loss's architecture.
            param_dtype: the dtype of the network's parameters; the features are computed
                in the wider of it and the arguments' dtypes.
            ignore_index: the loss's ``ignore_index`` (only kinds that use it read it).
            check_finite: raise, in eager mode, on values the standard loss would turn into a
                non-finite loss (opt-in; see `learnedloss.LearnedLoss`).

        Returns:
            ``(features, valid)``: every feature in ``features`` (and any side input) by name,
            all of one shape ``(*, E)`` or ``(*)``, and the ``(*)`` mask of the samples that
            count after `per_sample`, or None when all do.

        Raises:
            TypeError, ValueError: for arguments the loss cannot take, with what was expected.
        """

    @abc.abstractmethod
    def standard_term(
        self, features: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The standard loss's per-element term, which a residual loss starts from.

        Args:
            features: what `element_features` returned.

        Returns:
            ``(skip, multiplier)``, each of the features' shape: the network's output ``h``
            is combined with ``skip`` as ``LossConfig.residual_form`` says; ``multiplier``
            scales ``h`` in the ``"baseline"`` form (None where the kind has no such form).
        """

    def standard_loss(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """The standard loss's per-element value (before its reduction).

        A learned loss takes this value, with its gradient, for the elements its network
        cannot evaluate: those whose features are NaN, infinite or astronomically large
        (see `learnedloss.LearnedLoss`). So NaN in gives NaN out, an infinite error gives an
        infinite loss, and a class masked by a ``-inf`` logit contributes 0, each exactly as
        in the standard loss. Default: the ``skip`` of `standard_term` (the cross-entropy
        term, the REINFORCE term); `Regression` squares its residual.

        Shape:
            - Output: the features' shape.
        """
        return self.standard_term(features)[0]

    def batch_dependent(self, config: LossConfig) -> bool:
        """Whether a loss of this config has elements whose value depends on the other
        elements of the call (default: the ``"weight"`` residual form, whose weights are
        normalized over the call). See `learnedloss.LearnedLoss.batch_dependent`."""
        return config.residual_form == "weight"

    def per_sample(self, per_element: torch.Tensor) -> torch.Tensor:
        """Turn the network's per-element values into per-sample losses (default: as is).

        Shape:
            - Input: the features' shape.
            - Output: the shape of ``valid`` from `element_features`, the shape that
              ``reduction='none'`` returns.
        """
        return per_element

    def check_config(self, config: LossConfig) -> None:
        """Raise `learnedloss.ConfigError` for a config this kind cannot run (default: none).

        Called at the end of ``LossConfig``'s own checks, which already enforce
        ``features``, ``residual_forms`` and ``takes_side_inputs``.
        """
        return None

    def usage_line(self, side_inputs: tuple[str, ...]) -> str:
        """The model card's usage line for a loss that reads these side inputs."""
        if not side_inputs:
            return self.call
        side = ", ".join(f"{name}={name}" for name in side_inputs)
        return f"# side inputs have the input's shape\nloss = loss_fn({self.arguments}, {side})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class ElementwiseKind(LossKind):
    """A kind whose ``input`` and ``target`` are same-shaped tensors, one element at a time.

    Subclasses name the features ``input`` and ``target`` become (``input_feature``,
    ``target_feature``) and may add derived features in `derived_features`. Side inputs have
    the input's shape; the per-element values are the per-sample losses.

    Shape:
        - Input: :math:`(*)`, any number of dimensions, including 0-dim.
        - Target: :math:`(*)`, the same shape as the input. No broadcasting.
        - Side inputs (only those the config declares, by keyword): :math:`(*)`.
        - Output: scalar; with ``reduction='none'``, :math:`(*)`, the input's shape.
    """

    input_feature: ClassVar[str]
    """The feature name of the loss's ``input``."""

    target_feature: ClassVar[str]
    """The feature name of the loss's ``target``."""

    def element_features(
        self,
        input: Any,
        target: Any,
        side_inputs: dict[str, Any],
        *,
        config: LossConfig,
        param_dtype: torch.dtype,
        ignore_index: int,
        check_finite: bool,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        check_pair(input, target)
        check_side_inputs(side_inputs, config.side_inputs, input)
        if check_finite and can_inspect_values(input, target, *side_inputs.values()):
            for name, value in {"input": input, "target": target, **side_inputs}.items():
                check_all_finite(value, name)
        dtype = torch.promote_types(torch.promote_types(param_dtype, input.dtype), target.dtype)
        named = {self.input_feature: input.to(dtype), self.target_feature: target.to(dtype)}
        named.update({name: value.to(dtype) for name, value in side_inputs.items()})
        self.derived_features(named, config)
        return named, None

    def derived_features(self, named: dict[str, torch.Tensor], config: LossConfig) -> None:
        """Add features computed from ``input`` and ``target`` to ``named`` (default: none)."""


def check_pair(input: Any, target: Any) -> None:
    """Check that ``input`` and ``target`` are floating-point tensors of one shape."""
    for name, value in (("input", input), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise LossInputError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if not value.is_floating_point():
            raise LossInputError(
                f"{name} must be a floating-point tensor (float16, bfloat16, float32 or "
                f"float64), got {value.dtype}. For class labels use a classification loss; "
                "for integer regression targets convert with .float()."
            )
    if input.shape != target.shape:
        raise LossInputError(
            f"input and target must have the same shape, got input {tuple(input.shape)} and "
            f"target {tuple(target.shape)}. LearnedLoss never broadcasts; reshape one of them "
            "(e.g. target.view_as(input)) if that is what you meant."
        )


def check_side_inputs(given: dict[str, Any], declared: tuple[str, ...], input: Any) -> None:
    """Check that exactly the declared side inputs came, as floating-point tensors of the
    input's shape."""
    if set(given) != set(declared):
        call = ", ".join(["input", "target", *(f"{n}={n}" for n in declared)])
        raise LossInputError(
            f"this loss reads the side inputs {list(declared)} (from its config), but got "
            f"{sorted(given)}; call it as loss({call})"
        )
    for name, value in given.items():
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            got = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
            raise LossInputError(f"side input {name!r} must be a floating-point tensor, got {got}")
        if value.shape != input.shape:
            raise LossInputError(
                f"side input {name!r} must have the input's shape {tuple(input.shape)}, got "
                f"{tuple(value.shape)}"
            )


def can_inspect_values(*tensors: torch.Tensor) -> bool:
    """Whether a value check (which reads data on the host) can run on these tensors.

    Not inside ``torch.compile``, not under ``torch.func`` transforms (``vmap``, ``grad``),
    whose tensors cannot be read, and not on the ``meta`` device, which holds no values.
    """
    if torch.compiler.is_compiling():
        return False
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    return not any(t.is_meta or wrapped(t) for t in tensors)


def check_all_finite(
    tensor: torch.Tensor, name: str, *, allow_negative_infinity: bool = False
) -> None:
    """Raise ValueError when ``tensor`` holds NaN or infinite values (a host sync).

    ``allow_negative_infinity``: ``-inf`` passes (logits that mask a class).
    """
    finite = torch.isfinite(tensor)
    if allow_negative_infinity:
        finite = finite | torch.isneginf(tensor)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        what = "NaN or +inf" if allow_negative_infinity else "NaN or inf"
        raise LossInputError(
            f"{name} holds {bad} non-finite value(s) ({what}) out of {tensor.numel()}; this "
            "loss was built with check_finite=True, which refuses them. Without the check "
            "(the default) such values give a non-finite loss, as in the standard losses."
        )
