// Native driver of a systolic array (hw.array, hw.ws_array) under Verilator, behind a C ABI for ctypes
// (verify/native.py).
//
// The same drive discipline as the cocotb driver verify/array_tb.py, without
// Python per cycle: Python hands over a whole schedule (per-cycle a_in and the
// second operand port as little-endian byte rows, one byte row per control
// input and per mode input) and
// gets back the raw out_valid/out_data of every cycle on which out_valid != 0,
// as byte rows: the record array_tb writes, so verify.gemm assembles both alike.
//
// Timing, as in array_tb: rst is held for two rising edges; inputs change at
// the falling edge; outputs are sampled after the rising edge that updated
// them (nothing changes on the falling edge of a posedge-only design, so this
// is what array_tb reads at the next falling edge). After the schedule the
// controls go idle and the drain tail runs until every expected result is out.
//
// The build (verify.simulator.NativeBuild) generates harness_config.h, which
// includes the model's header and defines:
//   FOURBIT_TOP             the Verilated class (e.g. Vint4_array)
//   FOURBIT_B_PORT          the second operand port: b_in (output-stationary) or w_in (weight-stationary)
//   FOURBIT_CONTROL_PORTS(X) X(name) for each control input (0 in reset and in the drain tail), in schedule order
//   FOURBIT_MODE_PORTS(X)   X(name) for each mode input, in schedule order
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "harness_config.h"
#include "verilated.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the packed rows are copied as little-endian words");

namespace {

// Narrow ports are CData/SData/IData/QData integers, wide ones VlWide word
// arrays. The host is little-endian (x86-64, aarch64), so both are plain byte
// copies; bits above the port width are zero in the packed rows.
template <typename T>
void put(T &port, const uint8_t *src, size_t nbytes) {
    uint64_t value = 0;
    std::memcpy(&value, src, nbytes);
    port = static_cast<T>(value);
}

template <std::size_t N>
void put(VlWide<N> &port, const uint8_t *src, size_t nbytes) {
    // Verilator relies on the bits above a port's width being zero: clear what the row does not cover
    // rather than trust the model's initial value.
    if (nbytes < sizeof port) std::memset(reinterpret_cast<uint8_t *>(port.data()) + nbytes, 0, sizeof port - nbytes);
    std::memcpy(port.data(), src, nbytes);
}

template <typename T>
void get(const T &port, uint8_t *dst, size_t nbytes) {
    const uint64_t value = port;
    std::memcpy(dst, &value, nbytes);
}

template <std::size_t N>
void get(const VlWide<N> &port, uint8_t *dst, size_t nbytes) {
    std::memcpy(dst, port.data(), nbytes);
}

template <typename T>
bool any(const T &port) {
    return port != 0;
}

template <std::size_t N>
bool any(const VlWide<N> &port) {
    for (std::size_t i = 0; i < N; ++i)
        if (port.at(i)) return true;
    return false;
}

template <typename T>
uint64_t popcount(const T &port) {
    return __builtin_popcountll(static_cast<uint64_t>(port));
}

template <std::size_t N>
uint64_t popcount(const VlWide<N> &port) {
    uint64_t count = 0;
    for (std::size_t i = 0; i < N; ++i) count += __builtin_popcount(port.at(i));
    return count;
}

// The control and mode inputs' names, so that Python orders its rows by the
// model it loaded rather than by a list of its own.
#define FOURBIT_NAME(port) #port,
constexpr const char *kControlNames[] = {FOURBIT_CONTROL_PORTS(FOURBIT_NAME) nullptr};
constexpr const char *kModeNames[] = {FOURBIT_MODE_PORTS(FOURBIT_NAME) nullptr};
#undef FOURBIT_NAME
constexpr int kControls = sizeof kControlNames / sizeof kControlNames[0] - 1;
constexpr int kModes = sizeof kModeNames / sizeof kModeNames[0] - 1;

// Every control input to 0 (reset, drain tail).
inline void idle(FOURBIT_TOP &top) {
#define FOURBIT_IDLE(port) top.port = 0;
    FOURBIT_CONTROL_PORTS(FOURBIT_IDLE)
#undef FOURBIT_IDLE
}

struct Harness {
    std::unique_ptr<VerilatedContext> context;
    std::unique_ptr<FOURBIT_TOP> top;
    size_t a_bytes, b_bytes, valid_bytes, data_bytes;
};

// One clock period: the inputs set before this call are presented at the
// falling edge, and the rising edge samples them.
inline void cycle(FOURBIT_TOP &top) {
    top.clk = 0;
    top.eval();
    top.clk = 1;
    top.eval();
}

}  // namespace

extern "C" {

// Version of this ABI; verify/native.py refuses a library of another.
int fourbit_harness_abi(void) { return 2; }

// Number of control / mode inputs and the name of each, in the order fourbit_harness_run takes them.
int fourbit_harness_control_count(void) { return kControls; }

const char *fourbit_harness_control_name(int index) {
    return index >= 0 && index < kControls ? kControlNames[index] : nullptr;
}

int fourbit_harness_mode_count(void) { return kModes; }

const char *fourbit_harness_mode_name(int index) { return index >= 0 && index < kModes ? kModeNames[index] : nullptr; }

// Storage bytes of a port: 0 a_in, 1 the second operand port (b_in / w_in), 2 out_valid, 3 out_data.
long fourbit_harness_port_bytes(void *handle, int port) {
    const Harness *h = static_cast<Harness *>(handle);
    switch (port) {
        case 0: return static_cast<long>(h->a_bytes);
        case 1: return static_cast<long>(h->b_bytes);
        case 2: return static_cast<long>(h->valid_bytes);
        case 3: return static_cast<long>(h->data_bytes);
        default: return -1;
    }
}

void *fourbit_harness_new(void) {
    auto *h = new Harness;
    h->context = std::make_unique<VerilatedContext>();
    h->top = std::make_unique<FOURBIT_TOP>(h->context.get(), "top");
    // The storage of each Verilated port (1, 2, 4, 8 bytes or whole 32-bit words): Python's
    // packed rows, ceil(width / 8) bytes, must fit, which it checks before a run.
    h->a_bytes = sizeof h->top->a_in;
    h->b_bytes = sizeof h->top->FOURBIT_B_PORT;
    h->valid_bytes = sizeof h->top->out_valid;
    h->data_bytes = sizeof h->top->out_data;
    return h;
}

void fourbit_harness_free(void *handle) {
    Harness *h = static_cast<Harness *>(handle);
    if (h == nullptr) return;
    h->top->final();
    delete h;
}

// Run a schedule from reset. Returns the number of records written (cycles
// with out_valid != 0), or -1 when they would exceed max_records; *results is
// the number of results drained (set bits of out_valid), which the caller
// compares with expected_results (the drain stops early once that many are out).
//
//   cycles                 scheduled cycles
//   a_rows, a_stride       cycles rows of a_in, a_len bytes each (a_len <= storage of a_in)
//   b_rows, b_stride       likewise the second operand port (b_in / w_in)
//   controls               kControls pointers to cycles bytes each (the order of fourbit_harness_control_name)
//   modes                  kModes pointers to cycles bytes each (the order of fourbit_harness_mode_name)
//   drain_cycles           most idle cycles after the schedule
//   valid_out, data_out    max_records rows of valid_len and data_len bytes
long long fourbit_harness_run(void *handle, uint64_t cycles, const uint8_t *a_rows, size_t a_len,
                              const uint8_t *b_rows, size_t b_len, const uint8_t *const *controls,
                              const uint8_t *const *modes, uint64_t drain_cycles,
                              uint64_t expected_results, uint8_t *valid_out, size_t valid_len, uint8_t *data_out,
                              size_t data_len, uint64_t max_records, uint64_t *results) {
    Harness *h = static_cast<Harness *>(handle);
    FOURBIT_TOP &top = *h->top;
    // Reset, controls idle, for two rising edges (array_tb).
    idle(top);
    top.rst = 1;
    cycle(top);
    cycle(top);
    top.rst = 0;

    uint64_t records = 0, drained = 0;
    auto sample = [&]() -> bool {
        if (!any(top.out_valid)) return true;
        if (records == max_records) return false;
        get(top.out_valid, valid_out + records * valid_len, valid_len);
        get(top.out_data, data_out + records * data_len, data_len);
        drained += popcount(top.out_valid);
        ++records;
        return true;
    };

    for (uint64_t t = 0; t < cycles; ++t) {
        put(top.a_in, a_rows + t * a_len, a_len);
        put(top.FOURBIT_B_PORT, b_rows + t * b_len, b_len);
        int index = 0;
#define FOURBIT_DRIVE(port) top.port = controls[index++][t];
        FOURBIT_CONTROL_PORTS(FOURBIT_DRIVE)
#undef FOURBIT_DRIVE
        index = 0;
#define FOURBIT_DRIVE(port) top.port = modes[index++][t];
        FOURBIT_MODE_PORTS(FOURBIT_DRIVE)
#undef FOURBIT_DRIVE
        (void)index;
        cycle(top);
        if (!sample()) return -1;
    }
    idle(top);
    for (uint64_t t = 0; t < drain_cycles && drained < expected_results; ++t) {
        cycle(top);
        if (!sample()) return -1;
    }
    *results = drained;
    return static_cast<long long>(records);
}

}  // extern "C"
