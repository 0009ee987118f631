/* a2065net.c: RFC 1071 checksum, CRC-32 and super-packet segmentation (native/SPEC.md).
 *
 * Written for this project. The pure-Python twin native/oracle.py is the readable reference; the
 * differential tests hold the two to the same bytes and error codes.
 *
 * Rules: every access is bounds-checked against the caller's lengths; nothing is written outside
 * out[0..out_cap) or table[0..2*table_cap); every loop is bounded by a length or a count.
 */
#include "a2065net.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define A2065_X86 1
#else
#define A2065_X86 0
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define A2065_BE 1
#else
#define A2065_BE 0
#endif

enum {
    ETH_HLEN = 14,
    ETH_MAX = 1514, /* +4 per VLAN tag */
    ETH_MIN = 60,   /* shorter output frames are padded with zeros */
    FRAME_LIMIT = 1 << 20,
    MAX_EXTHDRS = 8,
    FRAG_MTU = 1500,
};

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_URG 0x20
#define TCP_CWR 0x80
#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFMASK 0x1FFF

static inline uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static inline uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* ---------------------------------------------------------------- RFC 1071 checksum ------- */

/* Sums are kept in the host's byte order: adding 32-bit words is the same as adding their 16-bit
 * halves modulo 0xFFFF (2^16 == 1), and a sum of byte-swapped words is the byte-swapped sum
 * (RFC 1071 section 2(B)), so one swap at the end gives the big-endian sum. */

static inline uint32_t fold(uint64_t s)
{
    while (s >> 16) /* at most 4 rounds */
        s = (s & 0xFFFF) + (s >> 16);
    return (uint32_t)s;
}

#define SUM_BODY                                                                              \
    uint64_t acc = 0;                                                                         \
    size_t i = 0, n4 = n & ~(size_t)3;                                                        \
    for (; i < n4; i += 4) { /* u32 loads into a u64 accumulator: vectorised at -O3 */         \
        uint32_t w;                                                                           \
        memcpy(&w, p + i, 4);                                                                 \
        acc += w;                                                                             \
    }                                                                                         \
    if (n - i >= 2) {                                                                         \
        uint16_t w;                                                                           \
        memcpy(&w, p + i, 2);                                                                 \
        acc += w;                                                                             \
        i += 2;                                                                               \
    }                                                                                         \
    if (i < n) /* odd tail byte is the high byte of a big-endian word */                      \
        acc += A2065_BE ? (uint64_t)p[i] << 8 : p[i];                                         \
    return acc;

static uint64_t sum_portable(const uint8_t *p, size_t n) { SUM_BODY }

static inline uint32_t swap16(uint32_t s) { return ((s & 0xFF) << 8) | (s >> 8); }

/* Portable fused copy + sum: the copy goes to the C library, the sum reads the (L1-hot) copy. */
static uint64_t copy_sum_portable(uint8_t *dst, const uint8_t *src, size_t n)
{
    memcpy(dst, src, n);
    return sum_portable(dst, n);
}

#if A2065_X86
/* AVX2: 16-bit halves of each 32-bit lane added into 32-bit lanes; a lane gains at most
 * 2 * 0xFFFF per 32-byte vector, so blocks of 8192 vectors per accumulator cannot overflow.
 * The loads are 32-byte aligned: the few bytes before the first boundary are summed apart; if
 * they are an odd count, the rest is summed on a grid shifted by one byte, which swaps the bytes
 * of its folded sum (RFC 1071 2(B)), so it is swapped back. COPY: also store every byte to dst
 * (fused copy + checksum: the payload is read once). */
#define AVX2_SUM_LOOP(COPY)                                                                   \
    while (n >= 64) { /* bounded: n shrinks by >= 64 per round */                              \
        size_t blocks = n / 64;                                                               \
        if (blocks > 8192)                                                                    \
            blocks = 8192;                                                                    \
        __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();                     \
        for (size_t b = 0; b < blocks; b++) {                                                 \
            __m256i v0 = _mm256_load_si256((const __m256i *)(const void *)p);                 \
            __m256i v1 = _mm256_load_si256((const __m256i *)(const void *)(p + 32));          \
            if (COPY) {                                                                       \
                _mm256_storeu_si256((__m256i *)(void *)d, v0);                                \
                _mm256_storeu_si256((__m256i *)(void *)(d + 32), v1);                         \
                d += 64;                                                                      \
            }                                                                                 \
            a0 = _mm256_add_epi32(a0, _mm256_and_si256(v0, lo));                              \
            a0 = _mm256_add_epi32(a0, _mm256_srli_epi32(v0, 16));                             \
            a1 = _mm256_add_epi32(a1, _mm256_and_si256(v1, lo));                              \
            a1 = _mm256_add_epi32(a1, _mm256_srli_epi32(v1, 16));                             \
            p += 64;                                                                          \
        }                                                                                     \
        n -= blocks * 64;                                                                     \
        /* widen the 32-bit lanes to 64 bits before adding the two accumulators */            \
        __m256i w = _mm256_add_epi64(_mm256_cvtepu32_epi64(_mm256_castsi256_si128(a0)),       \
                                     _mm256_cvtepu32_epi64(_mm256_extracti128_si256(a0, 1))); \
        w = _mm256_add_epi64(w, _mm256_cvtepu32_epi64(_mm256_castsi256_si128(a1)));           \
        w = _mm256_add_epi64(w, _mm256_cvtepu32_epi64(_mm256_extracti128_si256(a1, 1)));      \
        uint64_t lanes[4];                                                                    \
        _mm256_storeu_si256((__m256i *)(void *)lanes, w);                                     \
        total += lanes[0] + lanes[1] + lanes[2] + lanes[3];                                   \
    }

__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint8_t *p, size_t n)
{
    if (n < 128)
        return sum_portable(p, n);
    size_t h = (size_t)(-(uintptr_t)p & 31);
    uint64_t head = sum_portable(p, h), total = 0;
    const __m256i lo = _mm256_set1_epi32(0xFFFF);
    uint8_t *d = NULL; /* unused: no copy */
    p += h;
    n -= h;
    AVX2_SUM_LOOP(0)
    total += sum_portable(p, n);
    return (h & 1) ? head + swap16(fold(total)) : head + total;
}

__attribute__((target("avx2"))) static uint64_t copy_sum_avx2(uint8_t *d, const uint8_t *p,
                                                             size_t n)
{
    if (n < 128)
        return copy_sum_portable(d, p, n);
    size_t h = (size_t)(-(uintptr_t)p & 31);
    memcpy(d, p, h);
    uint64_t head = sum_portable(p, h), total = 0;
    const __m256i lo = _mm256_set1_epi32(0xFFFF);
    p += h;
    d += h;
    n -= h;
    AVX2_SUM_LOOP(1)
    memcpy(d, p, n);
    total += sum_portable(p, n);
    return (h & 1) ? head + swap16(fold(total)) : head + total;
}
#endif

static uint64_t (*sum_impl)(const uint8_t *, size_t) = sum_portable;
static uint64_t (*copy_sum_impl)(uint8_t *, const uint8_t *, size_t) = copy_sum_portable;

/* Folded big-endian ones'-complement sum: 0 only when every byte is 0, else 1..0xFFFF. */
static uint32_t sum_be(const uint8_t *p, size_t n)
{
    uint32_t s = fold(sum_impl(p, n));
    return A2065_BE ? s : swap16(s);
}

uint16_t a2065_checksum(const uint8_t *p, size_t n, uint32_t initial)
{
    if (p == NULL)
        n = 0;
    return (uint16_t)~fold((uint64_t)sum_be(p, n) + initial);
}

/* ---------------------------------------------------------------- CRC-32 ------------------ */

static uint32_t crc_tab[8][256];

static void crc_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xFF];
}

/* Raw reflected CRC register update (no pre/post inversion), slice-by-8. */
static uint32_t crc_slice8(uint32_t c, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint32_t lo = ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                       (uint32_t)p[3] << 24) ^ c;
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                      (uint32_t)p[7] << 24;
        c = crc_tab[7][lo & 0xFF] ^ crc_tab[6][(lo >> 8) & 0xFF] ^ crc_tab[5][(lo >> 16) & 0xFF] ^
            crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xFF] ^ crc_tab[2][(hi >> 8) & 0xFF] ^
            crc_tab[1][(hi >> 16) & 0xFF] ^ crc_tab[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = crc_tab[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c;
}

#if A2065_X86
/* PCLMULQDQ folding. In a 128-bit little-endian load of reflected-CRC data, bit i is the
 * coefficient of x^(127-i) counted from the block's end. Folding block A onto block B that ends
 * D bits later: A.lo64 * K(x^(D+32) mod P) ^ A.hi64 * K(x^(D-32) mod P) ^ B, with
 * K(r) = bitreverse32(r) << 1 (derivation and generator: tools/gen_crc_consts.py).
 * The initial register is XORed into the first 4 bytes; after folding, the 128-bit remainder is
 * congruent to everything folded so far, so its raw CRC from register 0 (16 table steps) is the
 * register value, and the tail continues with the table. No Barrett reduction needed. */
#define CLMUL_TARGET __attribute__((target("pclmul,sse4.1")))

CLMUL_TARGET static inline __m128i fold128(__m128i x, __m128i k, __m128i next)
{
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00),
                                       _mm_clmulepi64_si128(x, k, 0x11)),
                         next);
}

/* pshufb masks: 16 bytes at shuf_tab + s shift a register up by 16 - s bytes (zeros below),
 * at shuf_tab + 16 + s down by s bytes (zeros above); 0x80 selects a zero. */
static const uint8_t shuf_tab[48] = {
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
};

/* The last t (1..15) bytes, ending at `end`, after the folded block x (the 16 bytes before them;
 * the caller has consumed at least 16 bytes, so end - 16 is readable). The message x || tail is
 * re-cut as A = x's first t bytes (with 16 - t zero bytes ahead, which a CRC from register 0
 * ignores) and B = x's other 16 - t bytes || tail; B ends 128 bits after A, so one fold joins
 * them. No byte-at-a-time table steps for the tail. */
CLMUL_TARGET static inline __m128i fold_tail(__m128i x, const uint8_t *end, size_t t, __m128i k128)
{
    __m128i up = _mm_loadu_si128((const __m128i *)(const void *)(shuf_tab + t));
    __m128i down = _mm_loadu_si128((const __m128i *)(const void *)(shuf_tab + 16 + t));
    __m128i last = _mm_loadu_si128((const __m128i *)(const void *)(end - 16));
    __m128i a = _mm_shuffle_epi8(x, up);
    __m128i b = _mm_blendv_epi8(last, _mm_shuffle_epi8(x, down), up); /* x's bytes where up has 0x80 */
    return fold128(a, k128, b);
}

CLMUL_TARGET static uint32_t crc_clmul(uint32_t c, const uint8_t *p, size_t n)
{
    if (n < 64)
        return crc_slice8(c, p, n);
    const __m128i k512 = _mm_set_epi64x(0x1c6e41596LL, 0x154442bd4LL); /* D = 512 */
    const __m128i k128 = _mm_set_epi64x(0x0ccaa009eLL, 0x1751997d0LL); /* D = 128 */
    __m128i x0 = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i x1 = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(const void *)(p + 32));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(const void *)(p + 48));
    x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int)c));
    p += 64;
    n -= 64;
    while (n >= 64) { /* four independent chains hide the multiplier latency */
        x0 = fold128(x0, k512, _mm_loadu_si128((const __m128i *)(const void *)p));
        x1 = fold128(x1, k512, _mm_loadu_si128((const __m128i *)(const void *)(p + 16)));
        x2 = fold128(x2, k512, _mm_loadu_si128((const __m128i *)(const void *)(p + 32)));
        x3 = fold128(x3, k512, _mm_loadu_si128((const __m128i *)(const void *)(p + 48)));
        p += 64;
        n -= 64;
    }
    __m128i x = fold128(x0, k128, x1);
    x = fold128(x, k128, x2);
    x = fold128(x, k128, x3);
    while (n >= 16) {
        x = fold128(x, k128, _mm_loadu_si128((const __m128i *)(const void *)p));
        p += 16;
        n -= 16;
    }
    if (n)
        x = fold_tail(x, p + n, n, k128);
    uint8_t rem[16];
    _mm_storeu_si128((__m128i *)(void *)rem, x);
    return crc_slice8(0, rem, 16);
}
#endif

#if A2065_X86
/* VPCLMULQDQ on 256-bit registers (AVX2 + VPCLMULQDQ: Intel Ice Lake and later, AMD Zen 3 and
 * later): the same folding, two 128-bit blocks per register, four registers = 128 bytes per
 * round (D = 1024 per lane). The four registers are then folded pairwise (D = 512), into one
 * (D = 256), its two lanes into one block (D = 128), and the rest as in crc_clmul. */
#define VCLMUL_TARGET __attribute__((target("avx2,vpclmulqdq,pclmul,sse4.1")))

VCLMUL_TARGET static inline __m256i vfold(__m256i x, __m256i k, __m256i next)
{
    return _mm256_xor_si256(_mm256_xor_si256(_mm256_clmulepi64_epi128(x, k, 0x00),
                                             _mm256_clmulepi64_epi128(x, k, 0x11)),
                            next);
}

#define VLOAD(q) _mm256_loadu_si256((const __m256i *)(const void *)(q))

VCLMUL_TARGET static uint32_t crc_vclmul(uint32_t c, const uint8_t *p, size_t n)
{
    if (n < 256)
        return crc_clmul(c, p, n);
    const __m256i k1024 = _mm256_set_epi64x(0x14a7fe880LL, 0x1e88ef372LL, 0x14a7fe880LL, 0x1e88ef372LL);
    const __m256i k512 = _mm256_set_epi64x(0x1c6e41596LL, 0x154442bd4LL, 0x1c6e41596LL, 0x154442bd4LL);
    const __m256i k256 = _mm256_set_epi64x(0x15a546366LL, 0x0f1da05aaLL, 0x15a546366LL, 0x0f1da05aaLL);
    const __m128i k128 = _mm_set_epi64x(0x0ccaa009eLL, 0x1751997d0LL);
    __m256i y0 = _mm256_xor_si256(VLOAD(p), _mm256_set_epi32(0, 0, 0, 0, 0, 0, 0, (int)c));
    __m256i y1 = VLOAD(p + 32), y2 = VLOAD(p + 64), y3 = VLOAD(p + 96);
    p += 128;
    n -= 128;
    while (n >= 128) { /* bounded: n shrinks by 128 per round */
        y0 = vfold(y0, k1024, VLOAD(p));
        y1 = vfold(y1, k1024, VLOAD(p + 32));
        y2 = vfold(y2, k1024, VLOAD(p + 64));
        y3 = vfold(y3, k1024, VLOAD(p + 96));
        p += 128;
        n -= 128;
    }
    __m256i y = vfold(vfold(y0, k512, y2), k256, vfold(y1, k512, y3));
    while (n >= 32) {
        y = vfold(y, k256, VLOAD(p));
        p += 32;
        n -= 32;
    }
    __m128i x = fold128(_mm256_castsi256_si128(y), k128, _mm256_extracti128_si256(y, 1));
    /* gcc 12 emits no vzeroupper in this function: without it the caller's legacy-SSE code (the
     * table tail, CPython, libc) pays the dirty-upper-state penalty (~200 ns per call measured) */
    _mm256_zeroupper();
    if (n >= 16) {
        x = fold128(x, k128, _mm_loadu_si128((const __m128i *)(const void *)p));
        p += 16;
        n -= 16;
    }
    if (n)
        x = fold_tail(x, p + n, n, k128);
    uint8_t rem[16];
    _mm_storeu_si128((__m128i *)(void *)rem, x);
    return crc_slice8(0, rem, 16);
}
#endif

static uint32_t (*crc_impl)(uint32_t, const uint8_t *, size_t) = crc_slice8;

uint32_t a2065_crc32(const uint8_t *p, size_t n, uint32_t crc)
{
    if (p == NULL)
        return crc;
    return ~crc_impl(~crc, p, n);
}

/* ---------------------------------------------------------------- dispatch ---------------- */

static int have_avx2, have_clmul, have_vclmul;
static int crc_level; /* 0 slice-by-8, 1 PCLMULQDQ (128-bit), 2 VPCLMULQDQ (256-bit) */
static const char *impl_info = "checksum=portable crc32=slice8 crc32_fold=0";

static void set_info(void)
{
    /* "crc32" names the family (pclmul for both carry-less paths), crc32_fold the register width */
    static const char *names[2][3] = {
        {"checksum=portable crc32=slice8 crc32_fold=0", "checksum=portable crc32=pclmul crc32_fold=128",
         "checksum=portable crc32=pclmul crc32_fold=256"},
        {"checksum=avx2 crc32=slice8 crc32_fold=0", "checksum=avx2 crc32=pclmul crc32_fold=128",
         "checksum=avx2 crc32=pclmul crc32_fold=256"},
    };
    impl_info = names[sum_impl != sum_portable][crc_level];
}

static void choose(int wide, int level)
{
    crc_level = level;
#if A2065_X86
    sum_impl = wide ? sum_avx2 : sum_portable;
    copy_sum_impl = wide ? copy_sum_avx2 : copy_sum_portable;
    crc_impl = level == 2 ? crc_vclmul : level == 1 ? crc_clmul : crc_slice8;
#endif
    set_info();
}

__attribute__((constructor)) static void a2065_init(void)
{
    crc_tables();
#if A2065_X86 && defined(__GNUC__)
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2");
    have_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
    have_vclmul = have_clmul && have_avx2 && __builtin_cpu_supports("vpclmulqdq");
#endif
    choose(have_avx2, have_vclmul ? 2 : have_clmul ? 1 : 0);
}

const char *a2065_impl_info(void) { return impl_info; }

int a2065_set_impl(int checksum_wide, int crc_clmul_on)
{
    int level = crc_clmul_on == 0 ? 0 : crc_clmul_on == 2 ? 1 : (have_vclmul ? 2 : 1);
    if ((checksum_wide && !have_avx2) || (crc_clmul_on && !have_clmul) || crc_clmul_on < 0 ||
        crc_clmul_on > 2)
        return A2065_ERR_ARG;
    choose(checksum_wide != 0, level);
    return 0;
}

/* ---------------------------------------------------------------- segment ----------------- */

/* Payload copies go to the C library's memcpy: gcc otherwise inlines some of them as
 * `rep movsq`, which is several times slower on misaligned sources (measured on Zen 3). */
__attribute__((noinline)) static void copy_bytes(uint8_t *dst, const uint8_t *src, size_t n)
{
    memcpy(dst, src, n);
}

typedef struct {
    const uint8_t *f;
    size_t n;         /* captured length */
    size_t l3, l4;    /* offsets of the IP and L4 headers */
    size_t ip_end;    /* l3 + ip_len: bytes after it are Ethernet padding */
    size_t max_frame; /* 1514 + 4 * tags */
    int version, proto, fits;
} pkt_t;

typedef struct {
    uint8_t *out;
    size_t cap, used;
    uint32_t *tab;
    size_t tcap, count;
    int fcs;
} emit_t;

/* Reserve room for a frame of flen bytes (before padding and FCS); SPEC 9 order: table first. */
static int emit_begin(const emit_t *e, size_t flen, uint8_t **dst)
{
    size_t wire = (flen < ETH_MIN ? ETH_MIN : flen) + (e->fcs ? 4 : 0);
    if (e->count >= e->tcap)
        return A2065_ERR_TABLE_SPACE;
    if (wire > e->cap - e->used)
        return A2065_ERR_OUT_SPACE;
    *dst = e->out + e->used;
    return 0;
}

static void fcs_store(uint8_t *o, size_t n)
{
    uint32_t c = a2065_crc32(o, n, 0);
    c = A2065_BE ? __builtin_bswap32(c) : c; /* little-endian on the wire, one store */
    memcpy(o + n, &c, 4);
}

/* Pad, append the FCS, record (offset, length). emit_begin() reserved the room. */
static void emit_end(emit_t *e, size_t flen)
{
    uint8_t *o = e->out + e->used;
    if (flen < ETH_MIN) {
        memset(o + flen, 0, ETH_MIN - flen);
        flen = ETH_MIN;
    }
    if (e->fcs) {
        fcs_store(o, flen);
        flen += 4;
    }
    e->tab[2 * e->count] = (uint32_t)e->used;
    e->tab[2 * e->count + 1] = (uint32_t)flen;
    e->count++;
    e->used += flen;
}

/* Folded pseudo-header sum for TCP/UDP over l4_len bytes (IPv6: fixed header's addresses). */
static uint32_t pseudo_sum(const uint8_t *f, const pkt_t *k, size_t l4_len)
{
    uint8_t ph[40];
    if (k->version == 4) {
        memcpy(ph, f + k->l3 + 12, 8);
        ph[8] = 0;
        ph[9] = (uint8_t)k->proto;
        put16(ph + 10, (uint32_t)(l4_len & 0xFFFF));
        return sum_be(ph, 12);
    }
    memcpy(ph, f + k->l3 + 8, 32);
    put32(ph + 32, (uint32_t)l4_len);
    ph[36] = ph[37] = ph[38] = 0;
    ph[39] = (uint8_t)k->proto;
    return sum_be(ph, 40);
}

static size_t l4_csum_pos(int proto) { return proto == 6 ? 16 : 6; }

/* Fresh TCP/UDP checksum of buf[l4..end) with the field taken as 0 (buf need not be writable).
 * The field sits at an even offset from l4, so summing around it keeps the word alignment. */
static uint32_t fresh_l4(const uint8_t *buf, const pkt_t *k, size_t l4, size_t end)
{
    size_t pos = l4 + l4_csum_pos(k->proto);
    uint64_t s = pseudo_sum(buf, k, end - l4);
    s += sum_be(buf + l4, pos - l4);
    s += sum_be(buf + pos + 2, end - pos - 2);
    uint32_t c = ~fold(s) & 0xFFFF;
    if (c == 0 && k->proto == 17)
        c = 0xFFFF; /* UDP: 0 means "no checksum" */
    return c;
}

/* SPEC 8: the checksum a pass-through frame should carry. Returns 1 and sets *pos and *val when a
 * field must change, else 0. Reads the input only. */
static int completion(const pkt_t *k, int csum, uint32_t cs, uint32_t co, size_t *pos,
                      uint32_t *val)
{
    const uint8_t *f = k->f;
    if (k->proto == 6 || k->proto == 17) {
        size_t p = k->l4 + l4_csum_pos(k->proto);
        if (csum == A2065_CSUM_PARTIAL) {
            *pos = p;
            *val = fresh_l4(f, k, k->l4, k->ip_end);
            return 1;
        }
        if (csum == A2065_CSUM_DETECT) {
            uint32_t pseudo = pseudo_sum(f, k, k->ip_end - k->l4);
            int correct = fold((uint64_t)pseudo + sum_be(f + k->l4, k->ip_end - k->l4)) == 0xFFFF;
            if (get16(f + p) == pseudo && !correct) {
                *pos = p;
                *val = fresh_l4(f, k, k->l4, k->ip_end);
                return 1;
            }
        }
        return 0;
    }
    if (csum == A2065_CSUM_PARTIAL) {
        /* virtio rule: the field holds the host's seed; sum csum_start..end including it */
        uint64_t p = (uint64_t)cs + co;
        if (p + 2 <= k->ip_end) {
            *pos = (size_t)p;
            *val = ~sum_be(f + cs, k->ip_end - cs) & 0xFFFF;
            return 1;
        }
    }
    return 0;
}

static int emit_copy(emit_t *e, const uint8_t *f, size_t n, int patch, size_t pos, uint32_t val)
{
    uint8_t *o;
    int r = emit_begin(e, n, &o);
    if (r)
        return r;
    copy_bytes(o, f, n);
    if (patch)
        put16(o + pos, val);
    emit_end(e, n);
    return 0;
}

static int emit_complete(emit_t *e, const pkt_t *k, int csum, uint32_t cs, uint32_t co)
{
    size_t pos = 0;
    uint32_t val = 0;
    int patch = completion(k, csum, cs, co, &pos, &val);
    return emit_copy(e, k->f, k->n, patch, pos, val);
}

/* Segment headers are written by copying the input's and patching fields; their checksums are
 * computed from per-packet base sums (taken once from the input with the varying fields zeroed)
 * plus the new field values, never by reading back the bytes just stored (a wide load over fresh
 * narrow stores stalls store-to-load forwarding: measured ~30 % of segment() on Intel). */

/* Big-endian folded sum of h[0..n) (n <= 60) with the 16-bit words at the even offsets in z[]
 * (0-terminated after the first; offsets < n) taken as zero. */
static uint32_t base_sum(const uint8_t *h, size_t n, const uint8_t *z, int nz)
{
    uint8_t tmp[60];
    memcpy(tmp, h, n);
    for (int j = 0; j < nz; j++)
        tmp[z[j]] = tmp[z[j] + 1] = 0;
    return sum_be(tmp, n);
}

/* Big-endian folded sum of the TCP/UDP pseudo-header without its length (SPEC 6/7). */
static uint32_t pseudo_base(const uint8_t *f, const pkt_t *k)
{
    if (k->version == 4)
        return fold((uint64_t)sum_be(f + k->l3 + 12, 8) + (uint32_t)k->proto);
    return fold((uint64_t)sum_be(f + k->l3 + 8, 32) + (uint32_t)k->proto);
}

/* A native-order sum from copy_sum_impl as a big-endian folded sum. */
static inline uint32_t to_be(uint64_t s)
{
    uint32_t v = fold(s);
    return A2065_BE ? v : swap16(v);
}

/* The value of a checksum field for a big-endian sum. */
static inline uint32_t csum_of(uint64_t s_be) { return ~fold(s_be) & 0xFFFF; }

/* Per-segment IP fields: IPv4 total length, ID + i, header checksum (from ip_base: the input
 * header's sum without those three fields); IPv6 payload length. */
static void set_ip(uint8_t *o, const pkt_t *k, size_t l3_total, size_t i, uint32_t ip_base)
{
    uint8_t *ip = o + k->l3;
    if (k->version == 4) {
        uint32_t id = (get16(k->f + k->l3 + 4) + (uint32_t)i) & 0xFFFF;
        put16(ip + 2, (uint32_t)l3_total);
        put16(ip + 4, id);
        put16(ip + 10, csum_of((uint64_t)ip_base + l3_total + id));
    } else {
        put16(ip + 4, (uint32_t)(l3_total - 40));
    }
}

/* ip_base for set_ip(). */
static uint32_t ip_base_sum(const pkt_t *k)
{
    static const uint8_t z[3] = {2, 4, 10};
    if (k->version != 4)
        return 0;
    return base_sum(k->f + k->l3, k->l4 - k->l3, z, 3);
}

static int seg_tcp(emit_t *e, const pkt_t *k, uint32_t gso, uint32_t mss, int csum, uint32_t cs,
                   uint32_t co)
{
    const uint8_t *f = k->f;
    size_t l4 = k->l4, end = k->ip_end;
    if (end - l4 < 20)
        return A2065_ERR_TCPHDR;
    size_t thl = (size_t)(f[l4 + 12] >> 4) * 4;
    if (thl < 20 || thl > end - l4)
        return A2065_ERR_TCPHDR;
    size_t data = l4 + thl;
    size_t payload = end - data;
    int64_t fit = (int64_t)k->max_frame - (int64_t)data;
    int64_t seg = fit;
    if (gso)
        seg = (int64_t)gso < fit ? (int64_t)gso : fit;
    else if (mss)
        seg = (int64_t)mss < fit ? (int64_t)mss : fit;
    if (seg <= 0)
        return A2065_ERR_MSS;
    if ((int64_t)payload <= seg && k->fits)
        return emit_complete(e, k, csum, cs, co);
    size_t s = (size_t)seg;
    size_t nseg = payload ? (payload + s - 1) / s : 1;
    uint32_t flags = f[l4 + 13];
    if (nseg > 1 && (flags & TCP_URG))
        return A2065_ERR_URG;
    uint32_t seq = get32(f + l4 + 4);
    static const uint8_t tz[4] = {4, 6, 12, 16}; /* sequence, offset + flags, checksum */
    uint64_t base = (uint64_t)pseudo_base(f, k) + base_sum(f + l4, thl, tz, 4);
    uint32_t ip_base = ip_base_sum(k), off_hi = (uint32_t)f[l4 + 12] << 8;
    for (size_t i = 0; i < nseg; i++) { /* bounded by nseg (and the table) */
        size_t start = data + i * s;
        size_t piece = end - start < s ? end - start : s;
        size_t flen = data + piece;
        uint8_t *o;
        int r = emit_begin(e, flen, &o);
        if (r)
            return r;
        memcpy(o, f, data);
        /* the payload is copied and summed in one pass; it starts at an even offset from l4
         * (thl is a multiple of 4), so its sum adds to the header's as it is */
        uint64_t sum = to_be(copy_sum_impl(o + data, f + start, piece));
        set_ip(o, k, (l4 - k->l3) + thl + piece, i, ip_base);
        uint32_t fl = flags;
        if (i > 0)
            fl &= ~(uint32_t)TCP_CWR;
        if (i + 1 < nseg)
            fl &= ~(uint32_t)(TCP_FIN | TCP_PSH);
        uint32_t sq = seq + (uint32_t)(i * s);
        size_t l4len = thl + piece; /* pseudo-header length: 16 bits (IPv4) or 32 (IPv6) */
        put32(o + l4 + 4, sq);
        o[l4 + 13] = (uint8_t)fl;
        sum += base + (sq >> 16) + (sq & 0xFFFF) + (off_hi | fl) + (l4len >> 16) + (l4len & 0xFFFF);
        put16(o + l4 + 16, csum_of(sum));
        emit_end(e, flen);
    }
    return 0;
}

/* IPv4 options a later fragment keeps: copy bit set; EOL-padded to 4. Stops at EOL or at the
 * first malformed option. Returns the padded length (<= 40). */
static size_t copied_options(const uint8_t *opts, size_t n, uint8_t *kept)
{
    size_t i = 0, m = 0;
    while (i < n) { /* bounded: i grows every round */
        uint32_t t = opts[i];
        if (t == 0)
            break;
        if (t == 1) {
            i++;
            continue;
        }
        if (i + 1 >= n)
            break;
        size_t ln = opts[i + 1];
        if (ln < 2 || ln > n - i)
            break;
        if (t & 0x80) {
            memcpy(kept + m, opts + i, ln);
            m += ln;
        }
        i += ln;
    }
    while (m & 3)
        kept[m++] = 0;
    return m;
}

static int frag_ipv4(emit_t *e, const pkt_t *k, int csum, uint32_t cs, uint32_t co)
{
    const uint8_t *f = k->f;
    size_t l3 = k->l3, l4 = k->l4, end = k->ip_end;
    size_t ihl = l4 - l3;
    size_t fs = (FRAG_MTU - ihl) & ~(size_t)7;
    size_t body = end - l4;
    size_t nfrag = body ? (body + fs - 1) / fs : 1;
    uint32_t flags = get16(f + l3 + 6);
    uint8_t later[40];
    size_t later_len = copied_options(f + l3 + 20, ihl - 20, later);
    size_t cpos = 0;
    uint32_t cval = 0;
    int patch = completion(k, csum, cs, co, &cpos, &cval); /* field lies in the first fragment */
    for (size_t i = 0; i < nfrag; i++) {                   /* bounded by nfrag */
        size_t start = i * fs;
        size_t piece = body - start < fs ? body - start : fs;
        size_t hl = i == 0 ? ihl : 20 + later_len;
        size_t flen = l3 + hl + piece;
        uint8_t *o;
        int r = emit_begin(e, flen, &o);
        if (r)
            return r;
        memcpy(o, f, l3 + 20);
        if (i == 0)
            memcpy(o + l3 + 20, f + l3 + 20, ihl - 20);
        else
            memcpy(o + l3 + 20, later, later_len);
        copy_bytes(o + l3 + hl, f + l4 + start, piece);
        if (i == 0 && patch)
            put16(o + cpos, cval);
        uint8_t *ip = o + l3;
        uint32_t mf = i + 1 < nfrag ? IP_MF : (flags & IP_MF);
        ip[0] = (uint8_t)(0x40 | (hl / 4));
        put16(ip + 2, (uint32_t)(hl + piece));
        put16(ip + 6, (flags & ~(uint32_t)(IP_MF | IP_OFFMASK) & 0xFFFF) | mf | (uint32_t)(start >> 3));
        put16(ip + 10, 0);
        put16(ip + 10, a2065_checksum(ip, hl, 0));
        emit_end(e, flen);
    }
    return 0;
}

static int seg_udp(emit_t *e, const pkt_t *k, uint32_t gso, int csum, uint32_t cs, uint32_t co)
{
    const uint8_t *f = k->f;
    size_t l4 = k->l4, end = k->ip_end;
    if (end - l4 < 8)
        return A2065_ERR_UDPHDR;
    size_t data = l4 + 8;
    size_t payload = end - data;
    if (gso) {
        int64_t fit = (int64_t)k->max_frame - (int64_t)data;
        int64_t seg = (int64_t)gso < fit ? (int64_t)gso : fit;
        if (seg <= 0)
            return A2065_ERR_MSS;
        if ((int64_t)payload <= seg && k->fits)
            return emit_complete(e, k, csum, cs, co);
        size_t s = (size_t)seg;
        size_t nseg = payload ? (payload + s - 1) / s : 1;
        static const uint8_t uz[2] = {4, 6}; /* length, checksum */
        uint64_t base = (uint64_t)pseudo_base(f, k) + base_sum(f + l4, 8, uz, 2);
        uint32_t ip_base = ip_base_sum(k);
        for (size_t i = 0; i < nseg; i++) { /* bounded by nseg */
            size_t start = data + i * s;
            size_t piece = end - start < s ? end - start : s;
            size_t flen = data + piece;
            uint8_t *o;
            int r = emit_begin(e, flen, &o);
            if (r)
                return r;
            memcpy(o, f, data);
            uint64_t sum = to_be(copy_sum_impl(o + data, f + start, piece)); /* data - l4 = 8: even */
            set_ip(o, k, (l4 - k->l3) + 8 + piece, i, ip_base);
            size_t ulen = 8 + piece; /* UDP length; the pseudo-header's is the same here */
            put16(o + l4 + 4, (uint32_t)ulen);
            sum += base + 2 * (ulen & 0xFFFF) + (ulen >> 16);
            uint32_t c = csum_of(sum);
            put16(o + l4 + 6, c ? c : 0xFFFF); /* UDP: 0 means "no checksum" */
            emit_end(e, flen);
        }
        return 0;
    }
    if (k->fits)
        return emit_complete(e, k, csum, cs, co);
    if (k->version == 4 && !(get16(f + k->l3 + 6) & IP_DF))
        return frag_ipv4(e, k, csum, cs, co);
    return A2065_ERR_UDP_NOSEG;
}

/* SPEC 1-4. Returns 0 with *k filled, 1 for an early unchanged pass-through, or an error. */
static int walk(const uint8_t *f, size_t n, pkt_t *k)
{
    if (n < ETH_HLEN)
        return A2065_ERR_TRUNCATED;
    size_t off = 12;
    int ntags = 0;
    uint32_t et = get16(f + off);
    while (et == 0x8100 || et == 0x88A8) { /* bounded: returns at the third tag */
        if (ntags == 2)
            return n > ETH_MAX + 8 ? A2065_ERR_VLAN : 1;
        if (n < off + 2 + 4)
            return A2065_ERR_TRUNCATED;
        ntags++;
        off += 4;
        et = get16(f + off);
    }
    size_t l3 = off + 2;
    k->f = f;
    k->n = n;
    k->l3 = l3;
    k->max_frame = ETH_MAX + 4 * (size_t)ntags;
    k->fits = n <= k->max_frame;
    size_t cap = n - l3, ip_len;
    const uint8_t *ip = f + l3;
    if (et == 0x0800) {
        if (cap < 20)
            return A2065_ERR_TRUNCATED;
        size_t ihl = (size_t)(ip[0] & 15) * 4;
        if ((ip[0] >> 4) != 4 || ihl < 20)
            return A2065_ERR_IPHDR;
        if (cap < ihl)
            return A2065_ERR_TRUNCATED;
        size_t total = get16(ip + 2);
        if (total == 0 && cap > 65535)
            ip_len = cap; /* BIG TCP */
        else if (total < ihl)
            return A2065_ERR_IPHDR;
        else
            ip_len = total;
        if (cap < ip_len)
            return A2065_ERR_TRUNCATED;
        if (get16(ip + 6) & (IP_MF | IP_OFFMASK))
            return k->fits ? 1 : A2065_ERR_FRAGMENT;
        k->version = 4;
        k->proto = ip[9];
        k->l4 = l3 + ihl;
    } else if (et == 0x86DD) {
        if (cap < 40)
            return A2065_ERR_TRUNCATED;
        if ((ip[0] >> 4) != 6)
            return A2065_ERR_IPHDR;
        size_t plen = get16(ip + 4);
        ip_len = (plen == 0 && cap > 65575) ? cap : 40 + plen;
        if (cap < ip_len)
            return A2065_ERR_TRUNCATED;
        uint32_t nh = ip[6];
        size_t hoff = 40;
        int count = 0;
        while (nh == 0 || nh == 43 || nh == 60) { /* bounded by MAX_EXTHDRS */
            if (++count > MAX_EXTHDRS)
                return A2065_ERR_EXTHDR;
            if (hoff + 2 > ip_len)
                return A2065_ERR_TRUNCATED;
            size_t hlen = ((size_t)ip[hoff + 1] + 1) * 8;
            if (hlen > ip_len - hoff)
                return A2065_ERR_TRUNCATED;
            nh = ip[hoff];
            hoff += hlen;
        }
        if (nh == 44)
            return k->fits ? 1 : A2065_ERR_FRAGMENT;
        k->version = 6;
        k->proto = (int)nh;
        k->l4 = l3 + hoff;
    } else {
        return k->fits ? 1 : A2065_ERR_ETHERTYPE;
    }
    k->ip_end = l3 + ip_len;
    return 0;
}

int a2065_segment(const uint8_t *frame, size_t len, uint32_t gso_size, uint32_t mss, int csum,
                  uint32_t csum_start, uint32_t csum_offset, int append_fcs,
                  uint8_t *out, size_t out_cap, uint32_t *table, size_t table_cap)
{
    if (frame == NULL || out == NULL || table == NULL || len > FRAME_LIMIT ||
        (csum != A2065_CSUM_NONE && csum != A2065_CSUM_PARTIAL && csum != A2065_CSUM_DETECT))
        return A2065_ERR_ARG;
    emit_t e = {out, out_cap > UINT32_MAX ? UINT32_MAX : out_cap, 0, table,
                table_cap > (size_t)INT32_MAX ? (size_t)INT32_MAX : table_cap, 0, append_fcs != 0};
    pkt_t k;
    memset(&k, 0, sizeof k);
    int r = walk(frame, len, &k);
    if (r == 1)
        r = emit_copy(&e, frame, len, 0, 0, 0);
    else if (r == 0) {
        if (k.proto == 6)
            r = seg_tcp(&e, &k, gso_size, mss, csum, csum_start, csum_offset);
        else if (k.proto == 17)
            r = seg_udp(&e, &k, gso_size, csum, csum_start, csum_offset);
        else if (k.fits)
            r = emit_complete(&e, &k, csum, csum_start, csum_offset);
        else
            r = A2065_ERR_PROTO;
    }
    return r < 0 ? r : (int)e.count;
}

int a2065_fcs_frames(uint8_t *buf, size_t cap, const uint32_t *table, size_t count)
{
    if (buf == NULL || table == NULL || count > (size_t)INT32_MAX)
        return A2065_ERR_ARG;
    for (size_t i = 0; i < count; i++) { /* all entries checked before anything is written */
        uint64_t end = (uint64_t)table[2 * i] + table[2 * i + 1] + 4;
        if (end > cap)
            return A2065_ERR_ARG;
    }
    for (size_t i = 0; i < count; i++)
        fcs_store(buf + table[2 * i], table[2 * i + 1]);
    return (int)count;
}

/* ---------------------------------------------------------------- LANCE descriptor paths --- */
/* The Am7990 model's per-frame hot paths (lance/chip.py) over the board's buffer RAM; semantics in
 * native/SPEC.md ("LANCE descriptor paths"). ram[0 .. size), size a power of two; desc is reduced
 * modulo size. A descriptor is four big-endian 16-bit words; word 1 bit 15 is OWN, bits 7:0 the
 * buffer address bits 23:16; word 2 holds -BCNT in bits 11:0 (0 = 4096). Nothing is written
 * unless the whole transfer lies inside ram. */

#define LANCE_OWN 0x8000u
#define LANCE_ERR 0x4000u
#define LANCE_STP_ENP 0x0300u
#define LANCE_FCS 4u

static int lance_ram_ok(const uint8_t *ram, size_t size)
{
    return ram != NULL && size >= 8 && (size & (size - 1)) == 0 && size <= ((size_t)1 << 24);
}

/* BCNT as the chip reads it: the two's complement of word 2's low 12 bits, 0 meaning 4096. */
static inline uint32_t lance_bcnt(uint32_t w2)
{
    uint32_t b = (0u - w2) & 0xFFFu;
    return b ? b : 4096u;
}

int a2065_lance_rx_store(uint8_t *ram, size_t size, uint32_t desc, const uint8_t *frame, size_t n)
{
    if (!lance_ram_ok(ram, size) || frame == NULL)
        return A2065_ERR_ARG;
    size_t a = desc & (size - 1);
    if (a > size - 8)
        return 0;
    uint32_t w0 = get16(ram + a), w1 = get16(ram + a + 2), w2 = get16(ram + a + 4);
    if (!(w1 & LANCE_OWN))
        return 0;
    if (n > 4096 - LANCE_FCS || n + LANCE_FCS > lance_bcnt(w2))
        return 0;
    size_t b = (((w1 & 0xFFu) << 16) | w0) & (size - 1);
    if (b + n + LANCE_FCS > size)
        return 0;
    memcpy(ram + b, frame, n);
    fcs_store(ram + b, n);
    /* words 1-3 from the values read before the copy (a buffer may overlap its descriptor) */
    put16(ram + a + 2, (w1 & 0xFFu) | LANCE_STP_ENP);
    put16(ram + a + 4, w2);
    put16(ram + a + 6, (uint32_t)(n + LANCE_FCS));
    return (int)(n + LANCE_FCS);
}

int64_t a2065_lance_tx_take(const uint8_t *ram, size_t size, uint32_t desc, int add_fcs,
                            uint8_t *out, size_t out_cap)
{
    if (!lance_ram_ok(ram, size) || out == NULL || out_cap < 4096 + LANCE_FCS)
        return A2065_ERR_ARG;
    size_t a = desc & (size - 1);
    if (a > size - 8)
        return 0;
    uint32_t w0 = get16(ram + a), w1 = get16(ram + a + 2), w2 = get16(ram + a + 4);
    if (!(w1 & LANCE_OWN) || (w1 & LANCE_STP_ENP) != LANCE_STP_ENP)
        return 0;
    size_t n = lance_bcnt(w2);
    size_t b = (((w1 & 0xFFu) << 16) | w0) & (size - 1);
    if (b + n > size)
        return 0;
    memcpy(out, ram + b, n);
    if (add_fcs) {
        fcs_store(out, n);
        n += LANCE_FCS;
    }
    return (int64_t)w2 << 32 | (int64_t)w1 << 16 | (int64_t)n;
}
