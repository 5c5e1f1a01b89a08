"""The ``[model]`` section: architecture, widths, activation, init, norm, dropout (docs/models.md).

Names (arch, activation, init, norm, pool) and their parameters are checked here, when the
config is loaded; sizes that depend on the data (a conv stack too deep for the image) are checked
by :func:`trainwell.nn.build_model` before any training.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from trainwell.schema import Section

POOLS = ("max", "avg", "fractional_max", "none")


#: the names of the label head and the domain classifier of a domain-adversarial model
#: (:mod:`trainwell.nn.trunk`)
LABEL_HEAD = "label"
DOMAIN_HEAD = "domain"

class ModelConfig(Section):
    """The model spec. Fields not used by the chosen ``arch`` are ignored by it."""

    arch: str = Field(default="mlp", description="mlp, cnn, resnet, rnn, or python:module:factory")
    # mlp, and the fully connected part of cnn
    hidden: list[PositiveInt] = Field(
        default_factory=lambda: [256, 256], description="hidden widths"
    )
    activation: str | dict[str, Any] = Field(
        default="relu", description="name or {name = ..., params}"
    )
    init: str | dict[str, Any] = Field(
        default="auto", description="init scheme name or table; 'auto' follows the activation"
    )
    norm: str = Field(default="none", description="none, batch or layer")
    norm_position: Literal["before", "after"] = Field(
        default="before", description="norm before or after the activation"
    )
    dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="drop probability after each hidden layer"
    )
    dropout_kind: Literal["auto", "standard", "alpha", "dropconnect"] = Field(
        default="auto", description="auto: alpha dropout for SELU, inverted dropout otherwise"
    )
    # cnn
    channels: list[PositiveInt] = Field(
        default_factory=lambda: [32, 64], description="cnn: output channels of each conv block"
    )
    kernel_size: PositiveInt = 3
    stride: PositiveInt = 1
    padding: int = Field(default=1, ge=0)
    pool: str = Field(
        default="max", description="cnn: max, avg, fractional_max or none after each conv"
    )
    pool_size: PositiveInt = 2
    global_pool: bool = Field(
        default=False, description="cnn: global average pooling instead of flattening"
    )
    # resnet
    widths: list[PositiveInt] = Field(
        default_factory=lambda: [16, 32, 64], description="resnet: width of each stage"
    )
    blocks: list[PositiveInt] = Field(
        default_factory=lambda: [2, 2, 2], description="resnet: residual blocks per stage"
    )
    stochastic_depth: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="resnet: drop probability of the last block"
    )
    zero_init_residual: bool = Field(
        default=True, description="zero-init the last layer of each residual branch"
    )
    # rnn
    cell: Literal["rnn", "lstm", "gru"] = Field(
        default="lstm", description="rnn: vanilla tanh rnn, lstm or gru"
    )
    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 1
    bidirectional: bool = False
    # python:module:factory
    params: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of a python factory"
    )
    # transfer learning (docs/transfer.md)
    init_from: str | None = Field(
        default=None, description="initial weights: a run directory, a .safetensors file, a "
        "torch state-dict file (read with weights_only) or pretrained:<name>"
    )
    head: Literal["new", "keep"] = Field(
        default="new", description="init_from: a new last layer for this label set, or keep the "
        "source's (the same classes)"
    )
    transfer: Literal["finetune", "probe", "probe_then_finetune", "auto"] = Field(
        default="finetune", description="init_from: train every layer not frozen, a linear probe "
        "on the frozen backbone, the probe then every layer, or auto (lecture 002's table)"
    )
    freeze: str = Field(
        default="none", description="finetune: none, backbone, or a layer name (frozen up to and "
        "including it)"
    )
    lr_mult: float = Field(
        default=1.0, gt=0.0, le=10.0,
        description="learning-rate multiplier of the pretrained layers",
    )
    probe_share: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="probe_then_finetune: share of the epochs that "
        "train the head alone"
    )
    auto_rows_per_class: PositiveInt = Field(
        default=20, description="auto: fewer labelled training rows per class than this is "
        "'very little data'"
    )

    @field_validator("arch")
    @classmethod
    def _check_arch(cls, value: str) -> str:
        from trainwell.nn.architectures import check_arch

        return check_arch(value)

    @field_validator("activation")
    @classmethod
    def _check_activation(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        import warnings

        from trainwell.nn.activations import make_activation

        with warnings.catch_warnings():  # step warns again when the model is built
            warnings.simplefilter("ignore")
            make_activation(value, num_features=4)  # unknown names and bad parameters raise here
        return value

    @field_validator("init")
    @classmethod
    def _check_init(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        from trainwell.nn.init_schemes import make_init

        make_init(value)
        return value

    @field_validator("norm")
    @classmethod
    def _check_norm(cls, value: str) -> str:
        from trainwell.nn.layers import NORMS

        return NORMS.canonical(value)

    @field_validator("pool")
    @classmethod
    def _check_pool(cls, value: str) -> str:
        from trainwell.errors import ModelSpecError
        from trainwell.registry import unknown_name_message

        key = value.strip().lower()
        if key not in POOLS:
            raise ModelSpecError(unknown_name_message("pool", value, list(POOLS)))
        return key

    @model_validator(mode="after")
    def _check_transfer(self) -> ModelConfig:
        if self.init_from is not None and not self.init_from.strip():
            raise ValueError("model.init_from: empty; give a run directory, a weights file or "
                             "pretrained:<name>, or remove it")
        if self.init_from is None:
            changed = [k for k, default in (
                ("transfer", "finetune"), ("freeze", "none"), ("head", "new"), ("lr_mult", 1.0))
                if getattr(self, k) != default]
            if changed:
                k = changed[0]
                raise ValueError(f"model.{k}: {getattr(self, k)!r} needs model.init_from (the "
                                 f"pretrained weights); set model.init_from or remove model.{k}")
        elif self.transfer in ("probe", "probe_then_finetune", "auto") and self.freeze != "none":
            raise ValueError(f"model.freeze: {self.freeze!r} applies to transfer = 'finetune'; "
                             f"transfer = {self.transfer!r} freezes the backbone itself")
        return self

    @model_validator(mode="after")
    def _check_resnet(self) -> ModelConfig:
        if self.arch == "resnet" and len(self.blocks) != len(self.widths):
            from trainwell.errors import ModelSpecError

            raise ModelSpecError(
                f"model.blocks needs one entry per stage of model.widths ({len(self.widths)}); "
                f"got blocks={self.blocks}, widths={self.widths}"
            )
        return self
