"""Commands of the nn subpackage: ``trainwell model summary CONFIG``."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    from trainwell.cli import add_config_args, add_trust_code_arg

    model = sub.add_parser("model", help="inspect the model a config builds")
    model_sub = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    summary = model_sub.add_parser(
        "summary",
        help="print each layer, its output shape, its parameter count and its init scheme",
    )
    add_config_args(summary)
    add_trust_code_arg(summary)
    summary.set_defaults(func=_summary)
    model.set_defaults(func=lambda args: (model.print_help(), 2)[1])


def _example_batch(X, n: int = 256):
    import torch

    if isinstance(X, torch.Tensor):
        return X[:n].float()
    items = [X[i] for i in range(min(n, len(X)))]
    items = [item[0] if isinstance(item, (tuple, list)) else item for item in items]
    return torch.stack([torch.as_tensor(item, dtype=torch.float32) for item in items])


def _summary(args: argparse.Namespace) -> int:
    import torch

    from trainwell.cli import TRAINING_LIBRARIES, import_libraries, load_config_from_args
    from trainwell.data import prepare
    from trainwell.nn import build_model
    from trainwell.nn.summary import format_summary, model_summary

    cfg = load_config_from_args(args)
    import_libraries(*TRAINING_LIBRARIES)
    if cfg.model.arch.startswith("python:"):  # a factory module may sit beside the config
        import sys
        from pathlib import Path

        folder = str(Path(args.config).resolve().parent)
        if folder not in sys.path:
            sys.path.append(folder)
    data = prepare(cfg.data, cfg.seed, cfg.head_targets())
    torch.manual_seed(cfg.seed)
    batch = _example_batch(data.train.X)
    shape = tuple(data.input_shape)
    if cfg.heads or cfg.domain is not None:
        from trainwell.heads_run import build_run_model

        model = build_run_model(cfg, shape, data.n_outputs, data.task, data.heads, batch)
    else:
        model = build_model(cfg.model, shape, data.n_outputs, data.task, batch)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model {cfg.model.arch} for {data.task}: input {shape}, {data.n_outputs} output(s)")
    print(format_summary(model_summary(model, shape), n_params))
    return 0
