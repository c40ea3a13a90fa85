/*
 * The node behind a step's side stream (a `cep` step's `timeouts:` named
 * as a stream): other pipelines read it with `from:`. It is a downstream
 * node of the step (so it runs on the step's task, after it in
 * topological order, with the step's input watermark) whose input 0, the
 * step's regular output, is dropped; the side records arrive through
 * eddy__task_side_output() as input 1 and pass through unchanged.
 */
#include "plan.h"

static eddy_err_t side_compile(eddy_compile_ctx_t *cc, char *errstr, size_t en) {
    (void)cc;
    (void)errstr;
    (void)en;
    return EDDY_OK; /* made by the compiler, never named in a config */
}

static eddy_err_t side_process(eddy_op_t *op, int side, const eddy_batch_t *in,
                               eddy_batch_t *out) {
    (void)op;
    if (side == 0)
        return EDDY_OK;
    for (uint32_t i = 0; i < in->n; i++)
        *eddy_batch_push(out) = in->recs[i];
    return EDDY_OK;
}

static eddy_err_t side_process0(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    return side_process(op, 0, in, out);
}

const eddy_op_ops_t eddy__op_side_stream = {
    .abi = EDDY_OP_ABI,
    .name = "side_stream",
    .compile = side_compile,
    .process = side_process0,
    .process_side = side_process,
};
