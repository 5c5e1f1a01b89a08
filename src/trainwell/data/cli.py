"""``trainwell data describe CONFIG``: print what the model will be fed."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: argparse._SubParsersAction) -> None:
    from trainwell.cli import add_config_args

    data = sub.add_parser("data", help="inspect the data a config describes")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    p = data_sub.add_parser(
        "describe",
        help="print shapes, task, class balance, missing values and feature statistics after "
        "preprocessing; for images also write a PNG grid of a batch",
    )
    add_config_args(p)
    p.add_argument("--grid", metavar="PNG", default=None,
                   help="where to write the image grid (images only); default: "
                   "<config name>-batch.png in the current folder")
    p.add_argument("--augment-grid", metavar="PNG", default=None,
                   help="with [augment], where to write the grid of training images beside "
                   "their augmented views (images only); default: <config name>-augment.png in "
                   "the current folder")
    p.add_argument("--no-grid", action="store_true", help="do not write the image grids")
    p.add_argument("--max-features", type=int, default=20, metavar="N",
                   help="list at most N features (default 20)")
    p.set_defaults(func=_describe)
    lst = data_sub.add_parser("list", help="list the bundled datasets (data.source = "
                              "\"builtin:NAME\")")
    lst.set_defaults(func=_list)
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])


def default_grid_path(config: str) -> str:
    from pathlib import Path

    return f"{Path(config).stem}-batch.png"


def _describe(args: argparse.Namespace) -> int:
    from trainwell.cli import TRAINING_LIBRARIES, import_libraries, load_config_from_args
    from trainwell.data import prepare
    from trainwell.data.summary import describe, image_grid_png
    from trainwell.errors import DataError
    from trainwell.runs import write_bytes_atomic

    cfg = load_config_from_args(args)
    import_libraries(*TRAINING_LIBRARIES)
    data = prepare(cfg.data, cfg.seed, cfg.head_targets())
    if cfg.domain is not None:
        from trainwell.data.domain_data import prepare_domain

        # records in data.info what the target data got, for describe
        prepare_domain(cfg.domain.target, cfg.domain.params, data, cfg.seed)
    print(describe(data, max_features=max(args.max_features, 0)))
    if len(data.input_shape) == 3 and not args.no_grid:
        path = args.grid or default_grid_path(args.config)
        png = image_grid_png(data, seed=cfg.seed)
        try:
            write_bytes_atomic(path, png)
        except OSError as exc:
            raise DataError(
                f"cannot write the image grid to {path}: {exc.strerror or exc}"
            ) from None
        print(f"image grid of a training batch: {path}")
    if cfg.augment.enabled:
        _describe_augment(args, cfg, data)
    return 0


def _list(args: argparse.Namespace) -> int:
    from trainwell.data.builtin import list_builtins

    rows = list_builtins()
    width = max(len(r["name"]) for r in rows)
    print(f"{'name':<{width}}  {'kind':<9}  what")
    for r in rows:
        also = f" (also: {', '.join(r['aliases'])})" if r["aliases"] else ""
        print(f"{r['name']:<{width}}  {r['kind']:<9}  {r['what']}{also}")
    print('use one as data.source = "builtin:NAME"; see docs/data.md')
    return 0


def _describe_augment(args: argparse.Namespace, cfg: Any, data: Any) -> None:
    """The ``[augment]`` operations as fitted on the data, and (images) the grid of training
    images beside their augmented views."""
    from pathlib import Path

    from trainwell.data.augment.augmenter import Augmenter
    from trainwell.data.augment.grid import augment_grid_png, augment_summary
    from trainwell.errors import DataError
    from trainwell.runs import write_bytes_atomic

    augmenter = Augmenter.fit(cfg.augment, data)
    print("\n".join(augment_summary(augmenter)))
    if len(data.input_shape) == 3 and not args.no_grid:
        path = args.augment_grid or f"{Path(args.config).stem}-augment.png"
        try:
            write_bytes_atomic(path, augment_grid_png(data, augmenter, cfg.seed))
        except OSError as exc:
            raise DataError(
                f"cannot write the augmentation grid to {path}: {exc.strerror or exc}"
            ) from None
        print(f"training images beside their augmented views: {path}")
