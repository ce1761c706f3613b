"""A fake ``micropython`` module for CPython (installed by install_fakes)."""

from __future__ import annotations

from typing import Any, Callable

_heap_locked = 0


def const(x: Any) -> Any:
    return x


def alloc_emergency_exception_buf(size: int) -> None:
    pass


def schedule(fn: Callable[[Any], Any], arg: Any) -> None:
    # The host fakes fire IRQ handlers synchronously from model code, never from inside a
    # bytecode the app is running, so the scheduled call can run at once.
    fn(arg)


def heap_lock() -> int:
    global _heap_locked
    _heap_locked += 1
    return _heap_locked - 1


def heap_unlock() -> int:
    global _heap_locked
    _heap_locked = max(_heap_locked - 1, 0)
    return _heap_locked


def heap_locked() -> int:
    return _heap_locked


def mem_info(verbose: Any = None) -> None:
    print("mem: (host fake, no MicroPython heap)")


def qstr_info(verbose: Any = None) -> None:
    pass


def stack_use() -> int:
    return 0


def opt_level(level: int | None = None) -> int | None:
    return 0 if level is None else None


def kbd_intr(chr: int) -> None:
    pass


def _identity(f: Any) -> Any:
    return f


native = viper = asm_xtensa = _identity
