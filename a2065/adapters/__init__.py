"""Host adapters: ``generic`` (any Python emulator) and ``machine68k`` (Musashi via machine68k)."""
