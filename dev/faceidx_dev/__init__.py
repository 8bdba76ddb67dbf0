"""Development tools of faceidx, outside the runtime package: the local stand-ins (embedded moto,
local Batch compute, the whole product for make up), the index reader of the demo, and the scaling
simulator. Used by scripts/, benchmarks/, tests/ and the compose stack's moto image; never by a DAG."""
