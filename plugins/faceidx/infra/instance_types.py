"""What a job can ask of each GPU instance type. Pure data plus the rule for allocatable memory.

The ECS agent registers less memory than the instance has: the kernel, the agent and the NVIDIA driver
keep some. On g4dn.xlarge (16 GiB installed) ECS registers about 15.3 to 15.7 GiB, so a job asking for
16384 MiB is never placed and sits in RUNNABLE. We take the low end of that range as a margin for the
whole family: **allocatable = installed x (1 - 6.5 %)**, rounded down to whole MiB.

| type | vCPUs | GPUs | installed MiB | allocatable MiB |
| --- | --- | --- | --- | --- |
| g4dn.xlarge | 4 | 1 | 16,384 | 15,319 |
| g4dn.2xlarge | 8 | 1 | 32,768 | 30,638 |
| g4dn.4xlarge | 16 | 1 | 65,536 | 61,276 |
| g4dn.8xlarge | 32 | 1 | 131,072 | 122,552 |
| g4dn.12xlarge | 48 | 4 | 196,608 | 183,828 |
| g4dn.16xlarge | 64 | 1 | 262,144 | 245,104 |
| g4dn.metal | 96 | 8 | 393,216 | 367,656 |

A type missing here fails validation with a message saying to add it (with its vCPUs, GPUs and
installed memory) to ``INSTANCE_TYPES``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MEMORY_MARGIN = 0.065  # share of installed memory the ECS agent does not register (low end observed)


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    gpus: int
    memory_mib: int  # installed

    @property
    def allocatable_mib(self) -> int:
        return math.floor(self.memory_mib * (1 - MEMORY_MARGIN))


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
    )
}


def expand(instance_type: str) -> list[InstanceType] | None:
    """The table rows an ``instanceTypes`` entry allows: one size, or every size of a family
    (``"g4dn"``). None when the table does not know it."""
    if instance_type in INSTANCE_TYPES:
        return [INSTANCE_TYPES[instance_type]]
    family = [t for name, t in INSTANCE_TYPES.items() if name.split(".")[0] == instance_type]
    return family or None
