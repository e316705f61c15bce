"""PRT004 ddp-devices-on-gpu-only: pass ``device_ids``/``output_device`` to DDP only with CUDA.

``DistributedDataParallel(model, device_ids=[args.local_rank], output_device=args.local_rank)``
is right for one GPU per rank, but for a model on the CPU torch raises ``ValueError:
DistributedDataParallel device_ids and output_device arguments only work with single-device/
multiple-device GPU modules or CPU modules, but got device_ids [0] ...``. The rule keeps the GPU
arguments and gives ``None`` (what CPU modules need) when CUDA is not available.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._syntax import callee_name, mentions_cuda_check

KEYWORDS = ("device_ids", "output_device")
CHECK = "torch.cuda.is_available()"


class DdpDevicesOnGpuOnly(Rule):
    code = "PRT004"
    name = "ddp-devices-on-gpu-only"
    summary = "DDP's device_ids/output_device become None when CUDA is not available."
    rationale = __doc__
    settles = True
    triggers = ("device_ids", "output_device")
    examples = (
        Example(
            before="""
                import torch
                model = torch.nn.parallel.DistributedDataParallel(
                    model, device_ids=[args.local_rank], output_device=args.local_rank)
            """,
            after="""
                import torch
                model = torch.nn.parallel.DistributedDataParallel(
                    model, device_ids=[args.local_rank] if torch.cuda.is_available() else None, output_device=args.local_rank if torch.cuda.is_available() else None)
            """,  # noqa: E501
            messages=("device_ids/output_device only work for GPU modules: None without CUDA",),
        ),
        Example(
            before="""
                model = DistributedDataParallel(model)
            """
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        module = tree.module
        for call in tree.nodes(cst.Call):
            if callee_name(call) != "DistributedDataParallel" and callee_name(call) != "DDP":
                continue
            replacements: dict[cst.CSTNode, cst.CSTNode] = {}
            for arg in call.args:
                if arg.keyword is None or arg.keyword.value not in KEYWORDS:
                    continue
                if mentions_cuda_check(arg.value) or (
                    type(arg.value) is cst.Name and arg.value.value == "None"
                ):
                    continue
                code = module.code_for_node(arg.value)
                replacements[arg.value] = cst.parse_expression(
                    f"{code} if {CHECK} else None", config=module.config_for_parsing
                )
            if replacements:
                ctx.fix(
                    call,
                    "device_ids/output_device only work for GPU modules: None without CUDA",
                    replacements,
                    imports=("torch",),
                )
