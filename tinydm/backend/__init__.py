"""Where arrays live and how ops run on them: the only package in tinydm that knows NumPy from
CuPy.

Three devices: ``"cpu"`` (NumPy), ``"cuda"`` (CuPy on an NVIDIA GPU, ``pip install
tinydm[gpu]``) and ``"standin"`` (a CPU stand-in for ``"cuda"`` used by CI).

- :mod:`tinydm.backend.devices`: device selection, the array module of arrays (``xp``), host
  and device copies, random generators, the few NumPy/CuPy spelling differences;
- :mod:`tinydm.backend.standin`: the stand-in device, which fails wherever CuPy would;
- :mod:`tinydm.backend.parallel`: cache-sized chunks of a batch on several CPU threads;
- :mod:`tinydm.backend.memory`: the pool of host memory that ops draw large arrays from;
"""

from .devices import (DEVICES, array_text, as_strided, check_device, default_rng, device, device_of,
                      get_array_module, get_device, is_array, manual_seed, module_for, rng,
                      scatter_add, set_device, to_device, to_numpy)
from .parallel import (get_num_threads, in_runs, map_batch_chunks, map_batch_parts, parallel_map,
                       restore_thread_settings, run_length, set_num_threads, thread_settings)
from .standin import StandInArray, StandInError, standin_xp
from .memory import ArrayPool, add, empty, empty_like, zeros
from .memory import pool as memory_pool

__all__ = ["DEVICES", "array_text", "as_strided", "check_device", "default_rng", "device",
           "device_of", "get_array_module", "get_device", "is_array", "manual_seed", "module_for", "rng",
           "scatter_add", "set_device", "to_device", "to_numpy",
           "get_num_threads", "in_runs", "map_batch_chunks", "map_batch_parts", "parallel_map",
           "restore_thread_settings", "run_length", "set_num_threads", "thread_settings", "StandInArray",
           "StandInError", "standin_xp", "ArrayPool", "add", "empty", "empty_like", "zeros",
           "memory_pool"]
