/* a2065net: checksum, CRC-32 and segmentation core of the A2065 emulator's host bridge.
 *
 * Pure functions over caller buffers: no allocation, no global state besides tables and the
 * code-path choice made once at load time. Semantics of a2065_segment: native/SPEC.md.
 * The cffi build (native/_build.py) pastes the declarations below between the CDEF markers.
 */
#ifndef A2065NET_H
#define A2065NET_H

#include <stddef.h>
#include <stdint.h>

/* CDEF-BEGIN */
#define A2065_CSUM_NONE 0
#define A2065_CSUM_PARTIAL 1
#define A2065_CSUM_DETECT 2

#define A2065_ERR_TRUNCATED -1
#define A2065_ERR_ETHERTYPE -2
#define A2065_ERR_VLAN -3
#define A2065_ERR_IPHDR -4
#define A2065_ERR_FRAGMENT -5
#define A2065_ERR_EXTHDR -6
#define A2065_ERR_PROTO -7
#define A2065_ERR_TCPHDR -8
#define A2065_ERR_URG -9
#define A2065_ERR_MSS -10
#define A2065_ERR_UDPHDR -11
#define A2065_ERR_UDP_NOSEG -12
#define A2065_ERR_OUT_SPACE -13
#define A2065_ERR_TABLE_SPACE -14
#define A2065_ERR_ARG -15

/* RFC 1071: ~fold(sum of big-endian 16-bit words of p[0..n) + initial) & 0xFFFF. */
uint16_t a2065_checksum(const uint8_t *p, size_t n, uint32_t initial);

/* CRC-32 (IEEE 802.3), equal to zlib's crc32(crc, p, n). */
uint32_t a2065_crc32(const uint8_t *p, size_t n, uint32_t crc);

/* native/SPEC.md. Writes frames back to back into out[0..out_cap) and (offset, length) pairs
 * into table[0 .. 2*table_cap). Returns the frame count, or a negative A2065_ERR_*. */
int a2065_segment(const uint8_t *frame, size_t len, uint32_t gso_size, uint32_t mss, int csum,
                  uint32_t csum_start, uint32_t csum_offset, int append_fcs,
                  uint8_t *out, size_t out_cap, uint32_t *table, size_t table_cap);

/* Batch FCS: for each of the count (offset, length) pairs in table, store crc32(buf[offset ..
 * offset+length)) little-endian at buf[offset+length .. +4). Returns count, or A2065_ERR_ARG
 * (NULL pointer, or an entry whose FCS would end past cap: checked before anything is written). */
int a2065_fcs_frames(uint8_t *buf, size_t cap, const uint32_t *table, size_t count);

/* "checksum=<avx2|portable> crc32=<pclmul|slice8> crc32_fold=<256|128|0>": the paths chosen at
 * load time (crc32_fold: register width of the carry-less folding, 0 for the table). */
const char *a2065_impl_info(void);

/* Tests and benchmarks: choose the paths. checksum_wide: 1 AVX2, 0 portable. crc_clmul: 0
 * slice-by-8, 1 the widest carry-less path the CPU has (VPCLMULQDQ 256-bit, else PCLMULQDQ),
 * 2 PCLMULQDQ 128-bit. Returns 0, or A2065_ERR_ARG if the CPU lacks a requested feature or a
 * value is unknown (nothing changed). */
int a2065_set_impl(int checksum_wide, int crc_clmul);
/* LANCE descriptor paths (native/SPEC.md, "LANCE descriptor paths"): the Am7990 model's per-frame
 * work over the board RAM ram[0 .. size), size a power of two (8 .. 2^24), desc taken modulo size.
 * Receive: if the RMD at desc is owned, 8 bytes inside ram, and its buffer holds frame[0 .. n) plus
 * the FCS (n + 4 <= BCNT, ending inside ram): copy the frame, append crc32 little-endian, write
 * RMD1 = HADR | STP | ENP, RMD2 as read, RMD3 = n + 4; return n + 4. Else write nothing, return 0
 * (the caller's general path decides), or A2065_ERR_ARG (NULL pointer, bad size). */
int a2065_lance_rx_store(uint8_t *ram, size_t size, uint32_t desc, const uint8_t *frame, size_t n);

/* Transmit: if the TMD at desc is owned, 8 bytes inside ram, has STP and ENP, and its BCNT bytes
 * end inside ram: copy them to out (out_cap >= 4100), append crc32 little-endian if add_fcs, and
 * return TMD2 << 32 | TMD1 << 16 | length (with the FCS). Else return 0, or A2065_ERR_ARG. Writes
 * nothing to ram: the caller finishes the TMD after it has sent the frame. */
int64_t a2065_lance_tx_take(const uint8_t *ram, size_t size, uint32_t desc, int add_fcs,
                            uint8_t *out, size_t out_cap);
/* CDEF-END */

#endif
