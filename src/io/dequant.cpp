// ggml tensor types: the table of names and block sizes, and dequantisation of the block formats
// to float32. Block layouts follow ggml-common.h (block_q4_0 ... block_q8_K) and the element
// order of ggml-quants.c's dequantize_row_*.
//
// Results are bit-identical to gguf-py's gguf.quants.dequantize, not merely close: scales come
// from f16 (11 significant bits) and quants and k-quant sub-scales are small integers (<= 8
// bits), so every product here (d * q, d * sc, dmin * m, (d * sc) * q) is exact in float32,
// except Q6_K's (d * sc) * q (11 + 8 + 6 bits), which we form in gguf-py's order, and Q8_K's
// single f32 * int8 product. Only the final + m / - m rounds, so neither operation order nor
// FMA contraction can change a result (checked: built with -mfma -ffp-contract=fast the golden
// tests still match bit for bit).
// Not here: quantising, the IQ* / TQ* / MXFP4 codebook formats (their sizes are known so a file
// holding them still opens; dequantising them is an error that names the type).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>

#include "edgewise/error.h"
#include "edgewise/gguf.h"

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader assumes a little-endian host (GGUF files are little-endian)");

namespace edgewise {
namespace {

constexpr int64_t QK = 32;    // elements per block of the legacy formats (Q4_0 ... Q8_0)
constexpr int64_t QK_K = 256; // elements per super-block of the k-quants

struct TypeInfo {
  uint32_t id;
  const char* name;
  int64_t block_elems;
  int64_t block_bytes;
  bool dequantizable;
};

// Sizes as in ggml.c's type_traits (and gguf-py's GGML_QUANT_SIZES); ids 4, 5 (removed Q4_2,
// Q4_3) and 31-33 (removed Q4_0_4_4 ...) are not types any more.
constexpr TypeInfo kTypes[] = {
    {0, "F32", 1, 4, true},
    {1, "F16", 1, 2, true},
    {2, "Q4_0", QK, 2 + QK / 2, true},
    {3, "Q4_1", QK, 2 + 2 + QK / 2, true},
    {6, "Q5_0", QK, 2 + 4 + QK / 2, true},
    {7, "Q5_1", QK, 2 + 2 + 4 + QK / 2, true},
    {8, "Q8_0", QK, 2 + QK, true},
    {9, "Q8_1", QK, 4 + 4 + QK, false},
    {10, "Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4, true},
    {11, "Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12, true},
    {12, "Q4_K", QK_K, 2 + 2 + 12 + QK_K / 2, true},
    {13, "Q5_K", QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2, true},
    {14, "Q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, true},
    {15, "Q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2, true},
    {16, "IQ2_XXS", QK_K, 2 + QK_K / 4, false},
    {17, "IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32, false},
    {18, "IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8, false},
    {19, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16, false},
    {20, "IQ4_NL", QK, 2 + QK / 2, false},
    {21, "IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4, false},
    {22, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16, false},
    {23, "IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64, false},
    {24, "I8", 1, 1, true},
    {25, "I16", 1, 2, true},
    {26, "I32", 1, 4, true},
    {27, "I64", 1, 8, true},
    {28, "F64", 1, 8, true},
    {29, "IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32, false},
    {30, "BF16", 1, 2, true},
    {34, "TQ1_0", QK_K, 2 + 4 * 13, false},
    {35, "TQ2_0", QK_K, 2 + 64, false},
    {39, "MXFP4", QK, 1 + QK / 2, false},
    {40, "NVFP4", 64, 4 + 32, false},
    {41, "Q1_0", 128, 2 + 16, false},
};

const TypeInfo* find_type(uint32_t id) {
  for (const TypeInfo& t : kTypes)
    if (t.id == id) return &t;
  return nullptr;
}

// IEEE half -> float, exact for every input (subnormals, infinities, NaN payloads), as numpy's
// float16 -> float32 cast and ggml's GGML_FP16_TO_FP32.
float half_to_float_exact(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    // zero or subnormal: mant * 2^-24 is exact in float32
    float f = std::ldexp(static_cast<float>(mant), -24);
    bits = std::bit_cast<uint32_t>(f) | sign;
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + (127 - 15)) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

// All 65536 halves, built once (256 KiB): a table lookup is the fastest portable conversion.
struct HalfTable {
  float v[65536];
  HalfTable() {
    for (uint32_t i = 0; i < 65536; ++i) v[i] = half_to_float_exact(static_cast<uint16_t>(i));
  }
};
const HalfTable& half_table() {
  static const HalfTable table;
  return table;
}

inline uint16_t rd_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t rd_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ---- legacy 32-element blocks ----

// block_q4_0 { f16 d; u8 qs[16]; }: x[j] = (lo nibble of qs[j] - 8) * d, x[j+16] = (hi - 8) * d
void deq_q4_0(const uint8_t* src, float* y, int64_t nb, const float* h) {
  for (int64_t i = 0; i < nb; ++i, src += 18, y += QK) {
    const float d = h[rd_u16(src)];
    const uint8_t* qs = src + 2;
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>((qs[j] & 0x0f) - 8);
      y[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
    }
  }
}

// block_q4_1 { f16 d; f16 m; u8 qs[16]; }: x = d * q + m
void deq_q4_1(const uint8_t* src, float* y, int64_t nb, const float* h) {
  for (int64_t i = 0; i < nb; ++i, src += 20, y += QK) {
    const float d = h[rd_u16(src)];
    const float m = h[rd_u16(src + 2)];
    const uint8_t* qs = src + 4;
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(qs[j] & 0x0f) + m;
      y[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
    }
  }
}

// block_q5_0 { f16 d; u8 qh[4]; u8 qs[16]; }: bit j of qh (as a little-endian u32) is the 5th
// bit of element j; x = d * (q - 16)
void deq_q5_0(const uint8_t* src, float* y, int64_t nb, const float* h) {
  for (int64_t i = 0; i < nb; ++i, src += 22, y += QK) {
    const float d = h[rd_u16(src)];
    const uint32_t qh = rd_u32(src + 2);
    const uint8_t* qs = src + 6;
    for (int j = 0; j < 16; ++j) {
      const int lo = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      y[j] = d * static_cast<float>(lo - 16);
      y[j + 16] = d * static_cast<float>(hi - 16);
    }
  }
}

// block_q5_1 { f16 d; f16 m; u8 qh[4]; u8 qs[16]; }: x = d * q + m
void deq_q5_1(const uint8_t* src, float* y, int64_t nb, const float* h) {
  for (int64_t i = 0; i < nb; ++i, src += 24, y += QK) {
    const float d = h[rd_u16(src)];
    const float m = h[rd_u16(src + 2)];
    const uint32_t qh = rd_u32(src + 4);
    const uint8_t* qs = src + 8;
    for (int j = 0; j < 16; ++j) {
      const int lo = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      y[j] = d * static_cast<float>(lo) + m;
      y[j + 16] = d * static_cast<float>(hi) + m;
    }
  }
}

// block_q8_0 { f16 d; i8 qs[32]; }: x = q * d
void deq_q8_0(const uint8_t* src, float* y, int64_t nb, const float* h) {
  for (int64_t i = 0; i < nb; ++i, src += 34, y += QK) {
    const float d = h[rd_u16(src)];
    const int8_t* qs = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < QK; ++j) y[j] = static_cast<float>(qs[j]) * d;
  }
}

// ---- k-quants: 256-element super-blocks ----

// block_q2_K { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin; }. Element e = 128*c + 32*s + l
// (c: half, s: 2-bit plane, l < 32) is bits 2s..2s+1 of qs[32c + l]; its 16-element group
// g = e / 16 has scale d * (scales[g] & 15) and min dmin * (scales[g] >> 4).
void deq_q2_k(const uint8_t* src, float* y, int64_t nb, const float* h) {
  for (int64_t i = 0; i < nb; ++i, src += 84, y += QK_K) {
    const uint8_t* scales = src;
    const uint8_t* qs = src + 16;
    const float d = h[rd_u16(src + 80)];
    const float dmin = h[rd_u16(src + 82)];
    for (int c = 0; c < 2; ++c) {
      for (int s = 0; s < 4; ++s) {
        for (int half = 0; half < 2; ++half) {
          const int e0 = 128 * c + 32 * s + 16 * half;
          const uint8_t sc = scales[e0 / 16];
          const float dl = d * static_cast<float>(sc & 0x0f);
          const float ml = dmin * static_cast<float>(sc >> 4);
          const uint8_t* q = qs + 32 * c + 16 * half;
          for (int l = 0; l < 16; ++l)
            y[e0 + l] = dl * static_cast<float>((q[l] >> (2 * s)) & 3) - ml;
        }
      }
    }
  }
}

// block_q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d; }. Low 2 bits as in Q2_K; the
// 3rd bit of element e = 32*b + l is bit b of hmask[l], and a clear bit subtracts 4. The 16
// six-bit scales: low 4 bits from scales[g % 8] (nibble g / 8), high 2 bits from
// scales[8 + g % 4] (bits 2*(g/4)); stored with an offset of 32.
void deq_q3_k(const uint8_t* src, float* y, int64_t nb, const float* h) {
  for (int64_t i = 0; i < nb; ++i, src += 110, y += QK_K) {
    const uint8_t* hmask = src;
    const uint8_t* qs = src + 32;
    const uint8_t* sc = src + 96;
    const float d = h[rd_u16(src + 108)];
    float dl[16];
    for (int g = 0; g < 16; ++g) {
      const int lo = (sc[g % 8] >> (4 * (g / 8))) & 0x0f;
      const int hi = (sc[8 + g % 4] >> (2 * (g / 4))) & 0x03;
      dl[g] = d * static_cast<float>((lo | (hi << 4)) - 32);
    }
    for (int c = 0; c < 2; ++c) {
      for (int s = 0; s < 4; ++s) {
        const int b = 4 * c + s;  // hmask bit plane
        for (int l = 0; l < 32; ++l) {
          const int e = 128 * c + 32 * s + l;
          const int q = ((qs[32 * c + l] >> (2 * s)) & 3) - (((hmask[l] >> b) & 1) ? 0 : 4);
          y[e] = dl[e / 16] * static_cast<float>(q);
        }
      }
    }
  }
}

// The 8 six-bit (scale, min) pairs of Q4_K / Q5_K packed in 12 bytes (ggml's get_scale_min_k4).
inline void k4_scale_min(const uint8_t* s, int j, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128]; }. Element e = 64*c + 32*s + l is
// nibble s of qs[32c + l]; sub-block j = e / 32; x = (d * sc_j) * q - (dmin * m_j).
void deq_q4_k(const uint8_t* src, float* y, int64_t nb, const float* h) {
  for (int64_t i = 0; i < nb; ++i, src += 144, y += QK_K) {
    const float d = h[rd_u16(src)];
    const float dmin = h[rd_u16(src + 2)];
    const uint8_t* scales = src + 4;
    const uint8_t* qs = src + 16;
    for (int c = 0; c < 4; ++c) {
      int sc0, m0, sc1, m1;
      k4_scale_min(scales, 2 * c, sc0, m0);
      k4_scale_min(scales, 2 * c + 1, sc1, m1);
      const float d0 = d * static_cast<float>(sc0), mm0 = dmin * static_cast<float>(m0);
      const float d1 = d * static_cast<float>(sc1), mm1 = dmin * static_cast<float>(m1);
      const uint8_t* q = qs + 32 * c;
      float* yc = y + 64 * c;
      for (int l = 0; l < 32; ++l) {
        yc[l] = d0 * static_cast<float>(q[l] & 0x0f) - mm0;
        yc[l + 32] = d1 * static_cast<float>(q[l] >> 4) - mm1;
      }
    }
  }
}

// block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }: as Q4_K, plus the 5th
// bit of element e = 32*j + l in bit j of qh[l].
void deq_q5_k(const uint8_t* src, float* y, int64_t nb, const float* h) {
  for (int64_t i = 0; i < nb; ++i, src += 176, y += QK_K) {
    const float d = h[rd_u16(src)];
    const float dmin = h[rd_u16(src + 2)];
    const uint8_t* scales = src + 4;
    const uint8_t* qh = src + 16;
    const uint8_t* qs = src + 48;
    for (int c = 0; c < 4; ++c) {
      int sc0, m0, sc1, m1;
      k4_scale_min(scales, 2 * c, sc0, m0);
      k4_scale_min(scales, 2 * c + 1, sc1, m1);
      const float d0 = d * static_cast<float>(sc0), mm0 = dmin * static_cast<float>(m0);
      const float d1 = d * static_cast<float>(sc1), mm1 = dmin * static_cast<float>(m1);
      const uint8_t* q = qs + 32 * c;
      float* yc = y + 64 * c;
      const int b0 = 2 * c, b1 = 2 * c + 1;
      for (int l = 0; l < 32; ++l) {
        const int q0 = (q[l] & 0x0f) | (((qh[l] >> b0) & 1) << 4);
        const int q1 = (q[l] >> 4) | (((qh[l] >> b1) & 1) << 4);
        yc[l] = d0 * static_cast<float>(q0) - mm0;
        yc[l + 32] = d1 * static_cast<float>(q1) - mm1;
      }
    }
  }
}

// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }. In each half c (128 elements),
// element 32*t + l (t < 4, l < 32) has low nibble (t & 1 ? ql[64c + 32 + l] : ql[64c + l]),
// nibble t / 2, and high 2 bits (qh[32c + l] >> 2t) & 3; x = (d * scales[e / 16]) * (q - 32).
void deq_q6_k(const uint8_t* src, float* y, int64_t nb, const float* h) {
  for (int64_t i = 0; i < nb; ++i, src += 210, y += QK_K) {
    const uint8_t* ql = src;
    const uint8_t* qh = src + 128;
    const int8_t* scales = reinterpret_cast<const int8_t*>(src + 192);
    const float d = h[rd_u16(src + 208)];
    float ds[16];
    for (int g = 0; g < 16; ++g) ds[g] = d * static_cast<float>(scales[g]);
    for (int c = 0; c < 2; ++c) {
      const uint8_t* l0 = ql + 64 * c;
      const uint8_t* hh = qh + 32 * c;
      float* yc = y + 128 * c;
      const float* dc = ds + 8 * c;
      for (int l = 0; l < 32; ++l) {
        const int q1 = ((l0[l] & 0x0f) | (((hh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((l0[l + 32] & 0x0f) | (((hh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((l0[l] >> 4) | (((hh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((l0[l + 32] >> 4) | (((hh[l] >> 6) & 3) << 4)) - 32;
        const int g = l / 16;
        yc[l] = dc[g] * static_cast<float>(q1);
        yc[l + 32] = dc[g + 2] * static_cast<float>(q2);
        yc[l + 64] = dc[g + 4] * static_cast<float>(q3);
        yc[l + 96] = dc[g + 6] * static_cast<float>(q4);
      }
    }
  }
}

// block_q8_K { f32 d; i8 qs[256]; i16 bsums[16]; }: x = d * q (bsums only serve dot products)
void deq_q8_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += 292, y += QK_K) {
    float d;
    std::memcpy(&d, src, 4);
    const int8_t* qs = reinterpret_cast<const int8_t*>(src + 4);
    for (int j = 0; j < QK_K; ++j) y[j] = d * static_cast<float>(qs[j]);
  }
}

// ---- plain element types ----

template <class T>
void deq_cast(const uint8_t* src, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
    y[i] = static_cast<float>(v);  // round to nearest, as numpy's astype(float32)
  }
}

}  // namespace

std::string ggml_type_name(uint32_t type) {
  if (const TypeInfo* t = find_type(type)) return t->name;
  return "type" + std::to_string(type);
}

bool ggml_type_supported(uint32_t type) {
  const TypeInfo* t = find_type(type);
  return t && t->dequantizable;
}

int64_t ggml_block_elems(GgmlType t) {
  const TypeInfo* ti = find_type(static_cast<uint32_t>(t));
  return ti ? ti->block_elems : 0;
}

int64_t ggml_block_bytes(GgmlType t) {
  const TypeInfo* ti = find_type(static_cast<uint32_t>(t));
  return ti ? ti->block_bytes : 0;
}

uint64_t ggml_nbytes(GgmlType t, int64_t n, const std::string& where) {
  const TypeInfo* ti = find_type(static_cast<uint32_t>(t));
  if (!ti)
    fail(where, "unknown ggml type " + std::to_string(static_cast<uint32_t>(t)) +
                    ": its block size is not known");
  if (n < 0) fail(where, "negative element count " + std::to_string(n));
  if (n % ti->block_elems != 0)
    fail(where, std::to_string(n) + " elements is not a multiple of the " + ti->name +
                    " block size " + std::to_string(ti->block_elems));
  const uint64_t blocks = static_cast<uint64_t>(n / ti->block_elems);
  uint64_t bytes;
  if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(ti->block_bytes), &bytes))
    fail(where, std::to_string(n) + " elements of " + ti->name + " overflow a 64-bit byte count");
  return bytes;
}

void ggml_dequantize(GgmlType t, const uint8_t* src, float* dst, int64_t n) {
  const TypeInfo* ti = find_type(static_cast<uint32_t>(t));
  if (!ti || !ti->dequantizable)
    fail("ggml_dequantize", "unsupported ggml type " + ggml_type_name(static_cast<uint32_t>(t)));
  if (n < 0 || n % ti->block_elems != 0)
    fail("ggml_dequantize", std::to_string(n) + " elements is not a multiple of the " +
                                ti->name + " block size " + std::to_string(ti->block_elems));
  if (n == 0) return;  // an empty tensor: nothing to read or write (dst may be null)
  const int64_t nb = n / ti->block_elems;
  const float* h = half_table().v;
  switch (t) {
    case GgmlType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); break;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = h[rd_u16(src + 2 * i)];
      break;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i)
        dst[i] = std::bit_cast<float>(static_cast<uint32_t>(rd_u16(src + 2 * i)) << 16);
      break;
    case GgmlType::F64: deq_cast<double>(src, dst, n); break;
    case GgmlType::I8: deq_cast<int8_t>(src, dst, n); break;
    case GgmlType::I16: deq_cast<int16_t>(src, dst, n); break;
    case GgmlType::I32: deq_cast<int32_t>(src, dst, n); break;
    case GgmlType::I64: deq_cast<int64_t>(src, dst, n); break;
    case GgmlType::Q4_0: deq_q4_0(src, dst, nb, h); break;
    case GgmlType::Q4_1: deq_q4_1(src, dst, nb, h); break;
    case GgmlType::Q5_0: deq_q5_0(src, dst, nb, h); break;
    case GgmlType::Q5_1: deq_q5_1(src, dst, nb, h); break;
    case GgmlType::Q8_0: deq_q8_0(src, dst, nb, h); break;
    case GgmlType::Q2_K: deq_q2_k(src, dst, nb, h); break;
    case GgmlType::Q3_K: deq_q3_k(src, dst, nb, h); break;
    case GgmlType::Q4_K: deq_q4_k(src, dst, nb, h); break;
    case GgmlType::Q5_K: deq_q5_k(src, dst, nb, h); break;
    case GgmlType::Q6_K: deq_q6_k(src, dst, nb, h); break;
    case GgmlType::Q8_K: deq_q8_k(src, dst, nb); break;
    default:
      fail("ggml_dequantize", "unsupported ggml type " + ggml_type_name(static_cast<uint32_t>(t)));
  }
}

}  // namespace edgewise
