"""The README is part of the product: its example must run and its commands must exist."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


class _Cpu:
    def __init__(self):
        self.cycles = 0
        self.irq_levels = []

    def set_irq_level(self, level):
        self.irq_levels.append(level)

    def run(self, n):
        assert n > 0
        self.cycles += n


class _Running:
    """True for a fixed number of loop turns, then False."""

    def __init__(self, turns):
        self.turns = turns

    def __bool__(self):
        self.turns -= 1
        return self.turns >= 0


def test_readme_starts_with_exactly_the_two_setup_commands():
    first_block = re.search(r"```sh\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert [line.split("#")[0].strip() for line in first_block] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_readme_emulator_example_runs_and_answers_autoconfig_at_e80000():
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    assert len(code.splitlines()) <= 22
    cpu = _Cpu()
    ns = {"cpu": cpu, "running": _Running(50), "ram_read16": lambda addr: 0}
    exec(compile(code, "README.md", "exec"), ns)
    # er_Type 0xC1 is stored uninverted in the high nibble of the word at $E80000
    assert ns["mem_read16"](0xE80000) >> 12 == 0xC
    # er_Product 0x70 is stored inverted: high nibble of ~0x70 at $E80004
    assert ns["mem_read16"](0xE80004) >> 12 == (~0x70 >> 4) & 0xF
    assert ns["mem_read16"](0x000100) == 0          # not the card's: the host's own RAM handler
    assert cpu.cycles > 0 and cpu.irq_levels and set(cpu.irq_levels) <= {0, 2}
    assert ns["card"].mac == bytes.fromhex("008010123456")
