"""Derive the PCLMULQDQ folding constants used by native/src/a2065net.c (CRC-32, 0xEDB88320).

Bits of a 128-bit little-endian load of reflected-CRC data: bit i is the coefficient of x^(127-i)
counted from the end of the block. Folding block A onto block B that ends D bits later uses
    A.lo64 (higher degrees) * K(x^(D+32) mod P)   and   A.hi64 * K(x^(D-32) mod P)
where K(p) = bitreverse32(p) << 1: carry-less multiplying a 64-bit reflected operand by a 32-bit
reflected one gives a 95-bit reflected product; the << 1 and the x^(+-32) shift in the exponent
align it with B's 128 bits. Run: python3 tools/gen_crc_consts.py
"""
P = 0x104C11DB7  # x^32 + ... (normal form of the IEEE 802.3 polynomial)


def xpow_mod(e):
    r = 1
    for _ in range(e):
        r <<= 1
        if r >> 32 & 1:
            r ^= P
    return r


def k(e):
    p = xpow_mod(e)
    return int(f"{p:032b}"[::-1], 2) << 1


if __name__ == "__main__":
    # 1024: the 256-bit VPCLMULQDQ main loop (4 registers of 2 blocks); 512, 256, 128: folding
    # 128-bit blocks that far apart (crc_clmul's loop, crc_vclmul's reductions, the final folds)
    for name, d in (("FOLD1024", 1024), ("FOLD512", 512), ("FOLD256", 256), ("FOLD128", 128)):
        print(f"{name}: lo=0x{k(d + 32):09x} hi=0x{k(d - 32):09x}")
