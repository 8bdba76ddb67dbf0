"""What a job can ask of each instance type (the GPU workers' and the CPU maintenance jobs'). Pure data
plus the rule for allocatable memory.

The ECS agent registers less memory than the instance has: the kernel, the agent and the NVIDIA driver
keep some. On g4dn.xlarge (16 GiB installed) ECS registers about 15.3 to 15.7 GiB, so a job asking for
16384 MiB is never placed and sits in RUNNABLE. We take the low end of that range as a margin for
every family: **allocatable = installed x (1 - 6.5 %)**, rounded down to whole MiB.

g4dn (NVIDIA T4), g5 (A10G) and g6 (L4) are x86 GPU families that the ECS-optimized Amazon Linux 2023
GPU AMI (``ECS_AL2023_NVIDIA``) supports. Not every region offers g5 or g6.

| type | vCPUs | GPUs | installed MiB | allocatable MiB |
| --- | --- | --- | --- | --- |
| g4dn.xlarge | 4 | 1 | 16,384 | 15,319 |
| g4dn.2xlarge | 8 | 1 | 32,768 | 30,638 |
| g4dn.4xlarge | 16 | 1 | 65,536 | 61,276 |
| g4dn.8xlarge | 32 | 1 | 131,072 | 122,552 |
| g4dn.12xlarge | 48 | 4 | 196,608 | 183,828 |
| g4dn.16xlarge | 64 | 1 | 262,144 | 245,104 |
| g4dn.metal | 96 | 8 | 393,216 | 367,656 |
| g5.xlarge | 4 | 1 | 16,384 | 15,319 |
| g5.2xlarge | 8 | 1 | 32,768 | 30,638 |
| g5.4xlarge | 16 | 1 | 65,536 | 61,276 |
| g5.8xlarge | 32 | 1 | 131,072 | 122,552 |
| g5.12xlarge | 48 | 4 | 196,608 | 183,828 |
| g5.16xlarge | 64 | 1 | 262,144 | 245,104 |
| g5.24xlarge | 96 | 4 | 393,216 | 367,656 |
| g5.48xlarge | 192 | 8 | 786,432 | 735,313 |
| g6.xlarge | 4 | 1 | 16,384 | 15,319 |
| g6.2xlarge | 8 | 1 | 32,768 | 30,638 |
| g6.4xlarge | 16 | 1 | 65,536 | 61,276 |
| g6.8xlarge | 32 | 1 | 131,072 | 122,552 |
| g6.12xlarge | 48 | 4 | 196,608 | 183,828 |
| g6.16xlarge | 64 | 1 | 262,144 | 245,104 |
| g6.24xlarge | 96 | 4 | 393,216 | 367,656 |
| g6.48xlarge | 192 | 8 | 786,432 | 735,313 |

The maintenance environment runs on memory-optimised CPU types (8 GiB per vCPU, no GPU), on the
Amazon Linux 2023 ECS AMI (``ECS_AL2023``): r7i (Sapphire Rapids), r6i (Ice Lake) and r5 (Skylake /
Cascade Lake), so a spot shortage of one family leaves two others.

| type | vCPUs | GPUs | installed MiB | allocatable MiB |
| --- | --- | --- | --- | --- |
| r7i/r6i/r5.large | 2 | 0 | 16,384 | 15,319 |
| r7i/r6i/r5.xlarge | 4 | 0 | 32,768 | 30,638 |
| r7i/r6i/r5.2xlarge | 8 | 0 | 65,536 | 61,276 |
| r7i/r6i/r5.4xlarge | 16 | 0 | 131,072 | 122,552 |
| r7i/r6i/r5.8xlarge | 32 | 0 | 262,144 | 245,104 |

A type missing here fails validation with a message saying to add it (with its vCPUs, GPUs and
installed memory) to ``INSTANCE_TYPES``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MEMORY_MARGIN = 0.065  # share of installed memory the ECS agent does not register (low end observed)
# The hardware a Batch workload runs on (faceidx.infra.catalog.WORKLOADS).
GPU = "gpu"
CPU = "cpu"
MEMORY_OPTIMISED_FAMILIES = frozenset({"r5", "r6i", "r7i"})


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    gpus: int
    memory_mib: int  # installed

    @property
    def allocatable_mib(self) -> int:
        return math.floor(self.memory_mib * (1 - MEMORY_MARGIN))

    @property
    def family(self) -> str:
        return self.name.split(".")[0]

    @property
    def memory_optimised(self) -> bool:
        return self.family in MEMORY_OPTIMISED_FAMILIES


INSTANCE_TYPES: dict[str, InstanceType] = {
    t.name: t
    for t in (
        InstanceType("g4dn.xlarge", 4, 1, 16_384),
        InstanceType("g4dn.2xlarge", 8, 1, 32_768),
        InstanceType("g4dn.4xlarge", 16, 1, 65_536),
        InstanceType("g4dn.8xlarge", 32, 1, 131_072),
        InstanceType("g4dn.12xlarge", 48, 4, 196_608),
        InstanceType("g4dn.16xlarge", 64, 1, 262_144),
        InstanceType("g4dn.metal", 96, 8, 393_216),
        *(
            InstanceType(f"{family}.{size}", vcpus, gpus, memory)
            for family in ("g5", "g6")
            for size, vcpus, gpus, memory in (
                ("xlarge", 4, 1, 16_384),
                ("2xlarge", 8, 1, 32_768),
                ("4xlarge", 16, 1, 65_536),
                ("8xlarge", 32, 1, 131_072),
                ("12xlarge", 48, 4, 196_608),
                ("16xlarge", 64, 1, 262_144),
                ("24xlarge", 96, 4, 393_216),
                ("48xlarge", 192, 8, 786_432),
            )
        ),
        *(
            InstanceType(f"{family}.{size}", vcpus, 0, memory)
            for family in sorted(MEMORY_OPTIMISED_FAMILIES)
            for size, vcpus, memory in (
                ("large", 2, 16_384),
                ("xlarge", 4, 32_768),
                ("2xlarge", 8, 65_536),
                ("4xlarge", 16, 131_072),
                ("8xlarge", 32, 262_144),
            )
        ),
    )
}


def expand(instance_type: str) -> list[InstanceType] | None:
    """The table rows an ``instanceTypes`` entry allows: one size, or every size of a family
    (``"g4dn"``). None when the table does not know it."""
    if instance_type in INSTANCE_TYPES:
        return [INSTANCE_TYPES[instance_type]]
    family = [t for name, t in INSTANCE_TYPES.items() if name.split(".")[0] == instance_type]
    return family or None


def largest_allocatable_mib(instance_types: list[str] | tuple[str, ...]) -> int:
    """The most memory one job can ask for on these types (entries as ``instanceTypes`` takes them,
    sizes or families); 0 when the table knows none of them."""
    rows = [t for entry in instance_types for t in expand(entry) or []]
    return max((t.allocatable_mib for t in rows), default=0)
