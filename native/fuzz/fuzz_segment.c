/* libFuzzer target for a2065_segment (native/SPEC.md), written for this project.
 *
 * Build (native/fuzz/run.sh does this):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Inative/src \
 *         native/fuzz/fuzz_segment.c native/src/a2065net.c -o fuzz_segment
 *
 * Input: a 10-byte option header, then the frame.
 *   byte 0    bits 0-1 csum mode (3 = an invalid mode, must give ERR_ARG)
 *             bit 2 append_fcs; bit 3 portable checksum path; bit 4 slice-by-8 CRC path;
 *             bits 5-6 output buffer size class (0 ample, 1 64 KB, 2 tiny, 3 exact-ish)
 *             bit 7 table size class (0 ample, 1 tiny)
 *   bytes 1-2 gso_size (LE)   bytes 3-4 mss (LE)
 *   bytes 5-6 csum_start (LE) bytes 7-8 csum_offset (LE)
 *   byte 9    size parameter for the tiny classes
 * native/fuzz/seeds.py writes seeds in this format; tests/test_native_fuzz.py replays them.
 *
 * Checks beyond the sanitizers (any failure calls abort()):
 *  - the return value is a frame count >= 0 or one of the 15 documented error codes;
 *  - out is placed at the very end of a poisoned arena and the table at the end of its own
 *    allocation, so any write before or after either is an ASan report;
 *  - frames are back to back from offset 0, each 60..1522 bytes (+4 with FCS);
 *  - with append_fcs each frame's last 4 bytes equal an independent (bitwise) CRC-32;
 *  - the other code paths (portable/AVX2 checksum, slice-by-8/PCLMUL CRC) give the same bytes;
 *  - a2065_checksum and a2065_crc32 of the input agree with plain reference loops.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sanitizer/asan_interface.h>

#include "a2065net.h"

#define HDR 10
#define ARENA (8u << 20)    /* largest output we let the segmenter write */
#define TABLE_MAX 65536u
#define FRAME_MAX_OUT 1522u /* 1514 + 2 VLAN tags; pass-through of 3 tags is also <= 1522 */

static uint8_t *arena;
static uint32_t *table_arena;
static uint8_t *ref_out;
static uint32_t *ref_table;

static uint32_t crc_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static uint16_t csum_reference(const uint8_t *p, size_t n, uint32_t initial)
{
    uint64_t s = initial;
    size_t i = 0;
    for (; i + 1 < n; i += 2)
        s += (uint32_t)p[i] << 8 | p[i + 1];
    if (i < n)
        s += (uint32_t)p[i] << 8;
    while (s >> 16)
        s = (s & 0xFFFF) + (s >> 16);
    return (uint16_t)~s;
}

static void fail(const char *what, long a, long b)
{
    fprintf(stderr, "fuzz_segment: %s (%ld, %ld)\n", what, a, b);
    abort();
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    arena = malloc(ARENA);
    table_arena = malloc(TABLE_MAX * 2 * sizeof(uint32_t));
    ref_out = malloc(ARENA);
    ref_table = malloc(TABLE_MAX * 2 * sizeof(uint32_t));
    if (!arena || !table_arena || !ref_out || !ref_table)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR)
        return 0;
    const uint8_t b0 = data[0];
    int csum = b0 & 3;
    int fcs = (b0 >> 2) & 1;
    int portable_csum = (b0 >> 3) & 1, slice8 = (b0 >> 4) & 1;
    int out_class = (b0 >> 5) & 3, table_class = b0 >> 7;
    uint32_t gso = le16(data + 1), mss = le16(data + 3);
    uint32_t cs = le16(data + 5), co = le16(data + 7);
    uint8_t k = data[9];
    const uint8_t *frame = data + HDR;
    size_t len = size - HDR;

    /* the primitives against plain loops */
    if (a2065_checksum(frame, len, k) != csum_reference(frame, len, k))
        fail("checksum differs from the reference loop", (long)len, k);
    if (a2065_crc32(frame, len, 0) != crc_bitwise(frame, len))
        fail("crc32 differs from the bitwise reference", (long)len, 0);

    size_t out_cap;
    switch (out_class) {
    case 0: out_cap = ARENA; break;
    case 1: out_cap = 65536; break;
    case 2: out_cap = (size_t)k * 8; break;
    default: out_cap = len + (size_t)k * 64; break;
    }
    if (out_cap > ARENA)
        out_cap = ARENA;
    size_t table_cap = table_class ? (size_t)(k & 7) : TABLE_MAX;

    /* out ends exactly where the arena ends; the bytes before it are poisoned */
    uint8_t *out = arena + (ARENA - out_cap);
    uint32_t *table = table_arena + 2 * (TABLE_MAX - table_cap);
    ASAN_POISON_MEMORY_REGION(arena, ARENA - out_cap);
    ASAN_POISON_MEMORY_REGION(table_arena, (TABLE_MAX - table_cap) * 2 * sizeof(uint32_t));

    if (a2065_set_impl(!portable_csum, !slice8) != 0)
        a2065_set_impl(0, 0); /* CPU lacks a path: portable both */
    int n = a2065_segment(frame, len, gso, mss, csum, cs, co, fcs, out, out_cap, table, table_cap);

    if (n < A2065_ERR_ARG || (n < 0 && n > A2065_ERR_TRUNCATED))
        fail("return value is no documented error code", n, 0);
    if (csum == 3 && n != A2065_ERR_ARG)
        fail("an unknown csum mode must be ERR_ARG", n, csum);
    if (n > 0 && (size_t)n > table_cap)
        fail("more frames than table entries", n, (long)table_cap);

    size_t expect_off = 0;
    for (int i = 0; i < n; i++) {
        uint32_t off = table[2 * i], flen = table[2 * i + 1];
        if (off != expect_off)
            fail("frames are not back to back", off, (long)expect_off);
        if (flen < 60u + 4u * fcs || flen > FRAME_MAX_OUT + 4u * fcs)
            fail("frame length out of range", flen, fcs);
        if ((size_t)off + flen > out_cap)
            fail("frame past out_cap", off + flen, (long)out_cap);
        if (fcs) {
            const uint8_t *f = out + off;
            uint32_t c = crc_bitwise(f, flen - 4);
            uint32_t got = f[flen - 4] | f[flen - 3] << 8 | f[flen - 2] << 16 | (uint32_t)f[flen - 1] << 24;
            if (c != got)
                fail("FCS differs from the bitwise CRC-32", (long)c, (long)got);
        }
        expect_off = off + flen;
    }

    /* the other code paths must give the same result, byte for byte */
    if (n > 0 && out_class == 0 && table_class == 0) {
        int alt = a2065_set_impl(portable_csum, slice8);
        if (alt == 0) {
            int m = a2065_segment(frame, len, gso, mss, csum, cs, co, fcs, ref_out, ARENA,
                                  ref_table, TABLE_MAX);
            if (m != n)
                fail("code paths disagree on the frame count", n, m);
            if (memcmp(ref_table, table, (size_t)n * 2 * sizeof(uint32_t)) != 0 ||
                memcmp(ref_out, out, expect_off) != 0)
                fail("code paths disagree on the bytes", n, m);
        }
    }

    ASAN_UNPOISON_MEMORY_REGION(arena, ARENA - out_cap);
    ASAN_UNPOISON_MEMORY_REGION(table_arena, (TABLE_MAX - table_cap) * 2 * sizeof(uint32_t));
    return 0;
}
