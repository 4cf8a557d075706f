// Native driver of the training datapath (hw.datapath.TrainDatapath) under Verilator, behind a C ABI for
// ctypes (verify/cosim/native.py).
//
// Every operation is a faithful port of verify/cosim/driver.py's DatapathDriver, which drives the same
// model under cocotb: the same port writes in the same cycles, the same waits for `busy`, the same reads,
// and the same cycle counts (io_cycles: host-port cycles; compute_cycles: the cycles after a command's start
// edge until `busy` reads low). Only the per-cycle loop moved from Python to C++; Python hands over whole
// operations (a GEMM with its operand matrices, a gradient load, an FP4 encode) and gets numpy arrays back.
//
// Host ports, two ways (fourbit_datapath_host_ports). Clocked (0): every host word is one clock of the
// model, exactly as the cocotb driver. Direct (1, the default of verify/cosim/native.py): the words that
// cost a host-port cycle while the datapath idles are moved without clocking the model, and still
// counted in io_cycles one per word:
//   * A/B operand words are stored into the operand buffers (the model's a_buf/b_buf arrays), in the
//     order the ports would write them, and the address/data ports are left as the last port write
//     would leave them;
//   * result rows are read on res_total/res_code/res_inside/res_saturated after setting res_row and
//     evaluating the model without a clock edge (the outputs are combinational on the result registers);
//   * FP4 code words are read from the code memory's array (what c_data shows one cycle after c_addr).
// Bias words and gradient words still go through their ports, one clock each: they change registers
// (the bias registers, amax) whose logic must run in the RTL. Commands (start, busy cycles) are always
// clocked. What direct mode does not reproduce are the idle clocks themselves: in the clocked mode they
// also shift the stale operand-buffer read word (a_buf/b_buf at the streamer's address) through the
// array's ungated skew registers with valid = 0, which no PE accumulates and the next command's
// streaming overwrites before any valid operand reaches a PE; so every result, code, mask, gradient
// and cycle count is the same in both modes (tests/verify/test_cosim_native.py requires it).
//
// Timing, as the cocotb driver (FallingEdge of a clock that starts low): inputs change at the falling
// edge and outputs are sampled at the falling edge, one rising edge later. Nothing in the design is
// clocked on the falling edge, so one `tick` below is "eval with clk low, eval with clk high" and the
// outputs read after it are those the cocotb driver reads at the next falling edge.
//
// The build (verify.simulator.NativeBuild) generates harness_config.h, which includes the model's header
// and defines:
//   FOURBIT_TOP                 the Verilated class (Vtrain_datapath)
//   FOURBIT_ROWS, FOURBIT_COLS  the array size R x C
//   FOURBIT_K_DEPTH             words of an operand buffer (the B words of a multi-tile command)
//   FOURBIT_TOTAL_WIDTH         bits of a result total (accumulator + bias) and of a bias register
//   FOURBIT_GRAD_WIDTH          bits of a gradient word
//   FOURBIT_INPUTS(X)           X(name, width) for each input port the harness writes
//   FOURBIT_A_BUF(top), FOURBIT_B_BUF(top), FOURBIT_CODE_MEM(top)
//                               the model's arrays of the A and B operand buffers and of the code memory
//                               (direct host ports)
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "harness_config.h"
#include "verilated.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ports are copied as little-endian bytes");

namespace {

constexpr int R = FOURBIT_ROWS;
constexpr int C = FOURBIT_COLS;
constexpr uint64_t K_DEPTH = FOURBIT_K_DEPTH;
constexpr int TOTAL = FOURBIT_TOTAL_WIDTH;
constexpr int GRAD = FOURBIT_GRAD_WIDTH;
static_assert(TOTAL <= 64 && GRAD <= 64, "bias, total and gradient values are 64-bit integers here");

// Narrow ports are CData/SData/IData/QData integers, wide ones VlWide word arrays; both are plain
// little-endian byte copies. Bits above a port's width must be zero (Verilator relies on it).
template <typename T>
void put_bytes(T &port, const uint8_t *src, size_t nbytes) {
    uint64_t value = 0;
    std::memcpy(&value, src, nbytes < sizeof value ? nbytes : sizeof value);
    port = static_cast<T>(value);
}

template <std::size_t N>
void put_bytes(VlWide<N> &port, const uint8_t *src, size_t nbytes) {
    std::memset(reinterpret_cast<uint8_t *>(port.data()), 0, sizeof port);
    std::memcpy(port.data(), src, nbytes < sizeof port ? nbytes : sizeof port);
}

template <typename T>
void get_bytes(const T &port, uint8_t *dst) {
    const uint64_t value = port;
    std::memcpy(dst, &value, sizeof port);
}

template <std::size_t N>
void get_bytes(const VlWide<N> &port, uint8_t *dst) {
    std::memcpy(dst, port.data(), sizeof port);
}

// Bit fields of little-endian byte strings (at most 64 bits each).
inline uint64_t field(const uint8_t *bytes, size_t lo, unsigned width) {
    uint64_t value = 0;
    for (unsigned b = 0; b < width; ++b) {
        const size_t bit = lo + b;
        value |= static_cast<uint64_t>((bytes[bit >> 3] >> (bit & 7)) & 1) << b;
    }
    return value;
}

inline int64_t sign_extend(uint64_t value, unsigned width) {
    if (width < 64 && (value >> (width - 1)) & 1) value |= ~uint64_t(0) << width;
    return static_cast<int64_t>(value);
}

inline uint64_t low_bits(int64_t value, unsigned width) {
    const uint64_t v = static_cast<uint64_t>(value);
    return width >= 64 ? v : v & ((uint64_t(1) << width) - 1);
}

// Nibbles (4-bit codes, element j at bits 4j) packed into a byte string.
inline void pack_nibbles(uint8_t *bytes, size_t count, const int8_t *codes, ptrdiff_t step, size_t valid) {
    std::memset(bytes, 0, (count * 4 + 7) / 8);
    for (size_t j = 0; j < valid; ++j) {
        const uint8_t code = static_cast<uint8_t>(codes[static_cast<ptrdiff_t>(j) * step]) & 0xF;
        bytes[j >> 1] |= static_cast<uint8_t>(code << ((j & 1) * 4));
    }
}

// The order of the GEMM configuration values (verify/cosim/native.py GEMM_CONFIG).
enum GemmConfig { kMode, kASigned, kBSigned, kPost, kM0, kShift, kBase, kStride, kUseMask, kGemmConfigs };

struct Harness {
    std::unique_ptr<VerilatedContext> context;
    std::unique_ptr<FOURBIT_TOP> top;
    uint64_t io_cycles = 0, compute_cycles = 0;
    uint64_t clocks = 0;  // clock cycles simulated (all of them in clocked mode)
    bool direct = false;         // host ports direct (see the top of this file), else clocked
    bool have_bias_key = false;  // the bias tile last written (the driver's _bias_key)
    std::vector<int64_t> bias_key;
    std::string error;
};

inline void clock_edge(Harness &h) {
    FOURBIT_TOP &top = *h.top;
    top.clk = 0;
    top.eval();
    top.clk = 1;
    top.eval();
    ++h.clocks;
}

// DatapathDriver.tick: one host-port cycle.
inline void tick(Harness &h) {
    clock_edge(h);
    ++h.io_cycles;
}

// The widths of the input ports, to refuse a value the port cannot hold (as cocotb does) rather than
// let Verilator see bits above the width.
#define FOURBIT_WIDTH_CONST(port, width) constexpr unsigned kWidth_##port = width;
FOURBIT_INPUTS(FOURBIT_WIDTH_CONST)
#undef FOURBIT_WIDTH_CONST

#define SET(h, port, value)                                                                                      \
    do {                                                                                                         \
        const int64_t v_ = static_cast<int64_t>(value);                                                          \
        if (v_ < 0 || (kWidth_##port < 63 && v_ >= (int64_t(1) << kWidth_##port))) {                            \
            (h).error = std::string(#port ": value ") + std::to_string(v_) + " does not fit " +                  \
                        std::to_string(kWidth_##port) + " bits";                                                 \
            return -1;                                                                                           \
        }                                                                                                        \
        (h).top->port = static_cast<std::remove_reference_t<decltype((h).top->port)>>(v_);                                            \
    } while (0)

// DatapathDriver._write_words for an operand buffer: words 0 .. k-1, pack(kk, word) filling word kk, one
// host-port cycle each; clocked through the write port (we, addr, data), or direct into the buffer's
// array `mem`, leaving the ports as the last port write would (we low after it). The caller checked
// that address k - 1 fits the port.
template <typename Mem, typename We, typename Addr, typename Data, typename Pack>
void load_words(Harness &h, Mem &mem, We &we, Addr &addr, Data &data, uint64_t k, uint8_t *word, size_t nbytes,
                Pack pack) {
    we = !h.direct;
    for (uint64_t kk = 0; kk < k; ++kk) {
        addr = static_cast<Addr>(kk);
        pack(kk, word);
        if (h.direct) {
            put_bytes(mem[kk], word, nbytes);
            ++h.io_cycles;
        } else {
            put_bytes(data, word, nbytes);
            tick(h);
        }
    }
    if (h.direct && k > 0) put_bytes(data, word, nbytes);
    we = 0;
}

// DatapathDriver.command after its configuration writes: start, wait for busy to fall; the busy cycles.
// `on_cycle` runs after every clock edge of the command (DatapathDriver.command's `on_cycle`).
template <typename OnCycle>
uint64_t run_command(Harness &h, int cmd, OnCycle on_cycle) {
    FOURBIT_TOP &top = *h.top;
    top.cmd = static_cast<uint8_t>(cmd);
    top.start = 1;
    clock_edge(h);
    on_cycle();
    top.start = 0;
    uint64_t cycles = 0;
    while (true) {
        clock_edge(h);
        on_cycle();
        ++cycles;
        if (!top.busy) break;
    }
    h.compute_cycles += cycles;
    return cycles;
}

uint64_t run_command(Harness &h, int cmd) {
    return run_command(h, cmd, [] {});
}

}  // namespace

extern "C" {

// Version of this ABI; verify/cosim/native.py refuses a library of another.
int fourbit_datapath_abi(void) { return 2; }

// The generation parameters compiled in: 0 rows, 1 cols, 2 total width, 3 gradient width.
long fourbit_datapath_param(int which) {
    switch (which) {
        case 0: return R;
        case 1: return C;
        case 2: return TOTAL;
        case 3: return GRAD;
        default: return -1;
    }
}

// A new model, reset as DatapathDriver.reset does (host-port inputs idle, rst for two edges, one more edge).
void *fourbit_datapath_new(void) {
    auto *h = new Harness;
    h->context = std::make_unique<VerilatedContext>();
    h->top = std::make_unique<FOURBIT_TOP>(h->context.get(), "top");
    FOURBIT_TOP &top = *h->top;
    top.start = top.a_we = top.b_we = top.bias_we = top.g_we = top.cmd = 0;
    top.rst = 1;
    tick(*h);
    tick(*h);
    top.rst = 0;
    tick(*h);
    h->io_cycles = 0;
    return h;
}

void fourbit_datapath_free(void *handle) {
    Harness *h = static_cast<Harness *>(handle);
    if (h == nullptr) return;
    h->top->final();
    delete h;
}

// Host ports direct (1) or clocked (0); see the top of this file. A new model starts clocked.
void fourbit_datapath_host_ports(void *handle, int direct) { static_cast<Harness *>(handle)->direct = direct != 0; }

// The message of the last call that returned -1.
const char *fourbit_datapath_error(void *handle) { return static_cast<Harness *>(handle)->error.c_str(); }

// The driver's running totals: host-port cycles and busy cycles since reset.
void fourbit_datapath_counters(void *handle, uint64_t *io_cycles, uint64_t *compute_cycles) {
    const Harness *h = static_cast<Harness *>(handle);
    *io_cycles = h->io_cycles;
    *compute_cycles = h->compute_cycles;
}

// Clock cycles simulated since the model was made (reset included).
uint64_t fourbit_datapath_clocks(void *handle) { return static_cast<Harness *>(handle)->clocks; }

// DatapathDriver.gemm: a (m x k, row-major int8 codes) @ b (k x n) + bias (n int64, accumulator units),
// tiled onto the R x C array. config: kGemmConfigs values in GemmConfig order. Writes total (m x n
// int64) and, when want_codes, codes / inside / saturated (m x n uint8 each); stats: tiles,
// compute_cycles, io_cycles of this GEMM. Returns 0, or -1 with fourbit_datapath_error set.
int fourbit_datapath_gemm(void *handle, const int64_t *config, const int8_t *a, const int8_t *b, uint64_t m,
                          uint64_t k, uint64_t n, const int64_t *bias, int want_codes, int64_t *total,
                          uint8_t *codes, uint8_t *inside, uint8_t *saturated, uint64_t *stats) {
    Harness &h = *static_cast<Harness *>(handle);
    FOURBIT_TOP &top = *h.top;
    const uint64_t io0 = h.io_cycles, compute0 = h.compute_cycles;
    uint64_t tiles = 0;
    uint8_t a_word[(4 * R + 7) / 8], b_word[(4 * C + 7) / 8];
    uint8_t res_total[sizeof top.res_total], res_code[sizeof top.res_code], res_inside[sizeof top.res_inside],
        res_sat[sizeof top.res_saturated];
    std::vector<int64_t> bias_tile(C), next_bias(C);
    // Column tiles per command: as many as the B buffer holds (DatapathDriver.gemm's grouping).
    const uint64_t max_group = K_DEPTH / k;
    uint64_t group = 1;
    std::vector<uint64_t> drained(C);
    uint8_t drain_total[sizeof top.drain_total];
    for (uint64_t m0 = 0; m0 < m; m0 += R) {
        const uint64_t rows = m - m0 < R ? m - m0 : R;
        // A buffer word kk: column kk of the A tile, row i at bits 4i (rows beyond the tensor zero).
        SET(h, a_addr, k - 1);  // the largest address fits the port (k >= 1: the host checked)
        load_words(h, FOURBIT_A_BUF(top), top.a_we, top.a_addr, top.a_data, k, a_word, sizeof a_word,
                   [&](uint64_t kk, uint8_t *word) {
                       pack_nibbles(word, R, a + m0 * k + kk, static_cast<ptrdiff_t>(k), rows);
                   });
        for (uint64_t n0 = 0; n0 < n; n0 += C * group) {
            // DatapathDriver.gemm's grouping: consecutive column tiles with the same bias tile stream
            // as one multi-tile command when nothing but totals is wanted (POST_NONE).
            const auto bias_of = [&](uint64_t first, std::vector<int64_t> &out) {
                for (int j = 0; j < C; ++j) out[j] = first + j < n ? bias[first + j] : 0;
            };
            bias_of(n0, bias_tile);
            group = 1;
            if (config[kPost] == 0 && !want_codes) {
                while (group < max_group && n0 + C * group < n) {
                    bias_of(n0 + C * group, next_bias);
                    if (next_bias != bias_tile) break;
                    ++group;
                }
            }
            // B buffer word t * k + kk: row kk of column tile t of the group.
            SET(h, b_addr, group * k - 1);
            load_words(h, FOURBIT_B_BUF(top), top.b_we, top.b_addr, top.b_data, group * k, b_word, sizeof b_word,
                       [&](uint64_t word_index, uint8_t *word) {
                           const uint64_t t = word_index / k, kk = word_index % k, first = n0 + C * t;
                           const uint64_t cols = n - first < C ? n - first : C;
                           pack_nibbles(word, C, b + kk * n + first, 1, cols);
                       });
            if (!h.have_bias_key || bias_tile != h.bias_key) {
                top.bias_we = 1;
                for (int j = 0; j < C; ++j) {
                    SET(h, bias_addr, j);
                    top.bias_data = low_bits(bias_tile[j], TOTAL);
                    tick(h);
                }
                top.bias_we = 0;
                h.bias_key = bias_tile;
                h.have_bias_key = true;
            }
            const uint64_t cols = n - n0 < C ? n - n0 : C;
            SET(h, k, k);
            SET(h, tiles, group);
            SET(h, mode, config[kMode]);
            SET(h, a_signed, config[kASigned]);
            SET(h, b_signed, config[kBSigned]);
            SET(h, post, config[kPost]);
            SET(h, use_mask, config[kUseMask]);
            SET(h, m0, config[kM0]);
            SET(h, shift, config[kShift]);
            SET(h, rows_valid, rows);
            SET(h, cols_valid, cols);
            SET(h, base, config[kBase]);
            SET(h, offset, static_cast<int64_t>(m0) * config[kStride] + static_cast<int64_t>(n0));
            SET(h, stride, config[kStride]);
            if (group > 1) {
                // The totals as they drain: column j's d-th is row d % R of tile d / R.
                std::fill(drained.begin(), drained.end(), 0);
                run_command(h, FOURBIT_CMD_GEMM, [&] {
                    uint8_t valid[sizeof top.drain_valid];
                    get_bytes(top.drain_valid, valid);
                    bool any = false;
                    for (size_t byte = 0; byte < sizeof valid; ++byte) any = any || valid[byte] != 0;
                    if (!any) return;
                    get_bytes(top.drain_total, drain_total);
                    for (int j = 0; j < C; ++j) {
                        if (!field(valid, j, 1)) continue;
                        const uint64_t d = drained[j]++, t = d / R, i = d % R, column = n0 + C * t + j;
                        if (m0 + i < m && column < n)
                            total[(m0 + i) * n + column] = sign_extend(field(drain_total, TOTAL * j, TOTAL), TOTAL);
                    }
                });
                tiles += group;
                continue;
            }
            run_command(h, FOURBIT_CMD_GEMM);
            ++tiles;
            // Read back row by row: row i is shown while row i + 1 is addressed.
            top.res_row = 0;
            for (uint64_t i = 0; i < rows; ++i) {
                if (h.direct) {
                    SET(h, res_row, i);
                    top.eval();  // the res_* outputs of row i, no clock edge
                    ++h.io_cycles;
                } else {
                    tick(h);
                }
                get_bytes(top.res_total, res_total);
                if (want_codes) {
                    get_bytes(top.res_code, res_code);
                    get_bytes(top.res_inside, res_inside);
                    get_bytes(top.res_saturated, res_sat);
                }
                if (!h.direct && i + 1 < rows) SET(h, res_row, i + 1);
                const uint64_t row = (m0 + i) * n + n0;
                for (uint64_t j = 0; j < cols; ++j) {
                    total[row + j] = sign_extend(field(res_total, TOTAL * j, TOTAL), TOTAL);
                    if (want_codes) {
                        codes[row + j] = static_cast<uint8_t>(field(res_code, 4 * j, 4));
                        inside[row + j] = static_cast<uint8_t>(field(res_inside, j, 1));
                        saturated[row + j] = static_cast<uint8_t>(field(res_sat, j, 1));
                    }
                }
            }
        }
    }
    stats[0] = tiles;
    stats[1] = h.compute_cycles - compute0;
    stats[2] = h.io_cycles - io0;
    return 0;
}

// DatapathDriver.clear_amax; *cycles its busy cycles.
int fourbit_datapath_clear_amax(void *handle, uint64_t *cycles) {
    *cycles = run_command(*static_cast<Harness *>(handle), FOURBIT_CMD_CLEAR);
    return 0;
}

// DatapathDriver.load_grad: gradient words 0 .. count-1 (signed; their low FOURBIT_GRAD_WIDTH bits).
int fourbit_datapath_load_grad(void *handle, const int64_t *values, uint64_t count) {
    Harness &h = *static_cast<Harness *>(handle);
    FOURBIT_TOP &top = *h.top;
    top.g_we = 1;
    for (uint64_t i = 0; i < count; ++i) {
        SET(h, g_addr, i);
        top.g_data = low_bits(values[i], GRAD);
        tick(h);
    }
    top.g_we = 0;
    return 0;
}

// DatapathDriver.encode: FP4 codes of gradient words 0 .. count-1 (phase 0 into codes0, phase 1 into
// codes1), then the GradScale exponent, amax and the command's busy cycles.
int fourbit_datapath_encode(void *handle, uint64_t count, uint8_t *codes0, uint8_t *codes1, uint64_t *grad_k,
                            uint64_t *amax, uint64_t *cycles) {
    Harness &h = *static_cast<Harness *>(handle);
    FOURBIT_TOP &top = *h.top;
    SET(h, count, count);
    *cycles = run_command(h, FOURBIT_CMD_ENCODE);
    top.c_addr = 0;
    for (uint64_t i = 0; i < count; ++i) {
        uint8_t word;
        if (h.direct) {
            word = static_cast<uint8_t>(FOURBIT_CODE_MEM(top)[i]);
            ++h.io_cycles;
        } else {
            tick(h);
            word = top.c_data;
        }
        if (i + 1 < count) SET(h, c_addr, i + 1);
        codes0[i] = word & 0xF;
        codes1[i] = word >> 4;
    }
    *grad_k = top.grad_k;
    *amax = top.amax;
    return 0;
}

}  // extern "C"
