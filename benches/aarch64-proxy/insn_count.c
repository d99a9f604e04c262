/*
 * A qemu-user TCG plugin that counts the guest instructions executed and
 * prints the running count at every marker the program under test makes
 * (benches/aarch64-proxy.sh, docs/engine.md). Deterministic: the same
 * binary on the same input executes the same instructions on any host.
 *
 * A marker is the system call clock_getres (aarch64: 114) with a clock id
 * of MARK_BASE + code, an invalid clock that the kernel refuses at once;
 * each prints a line "code count" (count: instructions executed so far,
 * the marker's own call included) to the file named by the plugin
 * argument out=FILE (default stderr).
 *
 * Written against the plugin API of qemu 7.2 (plugin API version 1, what
 * Debian bookworm's qemu-user loads): qemu exports the functions, a plugin
 * declares the few it calls. Build: gcc -shared -fPIC -O2 -o libinsn_count.so
 * insn_count.c; run: qemu-aarch64 -plugin ./libinsn_count.so,arg=out=F PROG.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

/* --- The qemu 7.2 plugin API this file uses (qemu/qemu-plugin.h, v1). --- */
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct {
    const char *target_name;
    struct {
        int min;
        int cur;
    } version;
    bool system_emulation;
    union {
        struct {
            int smp_vcpus;
            int max_vcpus;
        } system;
    };
} qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index,
                             int64_t num, uint64_t a1, uint64_t a2,
                             uint64_t a3, uint64_t a4, uint64_t a5,
                             uint64_t a6, uint64_t a7, uint64_t a8);
typedef void (*udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb,
                                              enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, syscall_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb_t cb,
                                    void *userdata);
/* ------------------------------------------------------------------------ */

EXPORT int qemu_plugin_version = 1;

#define NR_CLOCK_GETRES 114
#define MARK_BASE 0x4d530000u
#define MARK_CODES 0x10000u

/* Instructions executed so far. One counter for all threads: run the
 * program on one thread (the inline add is not atomic). */
static uint64_t insns;
static FILE *out;

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    /* Every instruction of a block is counted when the block is entered;
     * a block ends at a system call, so counts at markers are exact. */
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                             &insns, qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num,
                    uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                    uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    (void)id, (void)vcpu, (void)a2, (void)a3, (void)a4, (void)a5, (void)a6,
        (void)a7, (void)a8;
    uint32_t clock = (uint32_t)a1;
    if (num == NR_CLOCK_GETRES && clock >= MARK_BASE &&
        clock - MARK_BASE < MARK_CODES) {
        fprintf(out, "%u %llu\n", clock - MARK_BASE, (unsigned long long)insns);
    }
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id, (void)userdata;
    fprintf(out, "exit %llu\n", (unsigned long long)insns);
    fflush(out);
    if (out != stderr) {
        fclose(out);
    }
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                               int argc, char **argv)
{
    (void)info;
    out = stderr;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            out = fopen(argv[i] + 4, "w");
            if (!out) {
                perror(argv[i] + 4);
                return -1;
            }
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
