/* access.h -- who may do what: the caller of a call, the task ids a client
 * may name, and the tasks a caller may see. Shared by the handlers
 * (rpc_*.c) and the watch hub (watch.c), which answer an id that is not
 * theirs to see exactly as one that does not exist, so that ids cannot be
 * probed. */
#ifndef DOCQ_ACCESS_H
#define DOCQ_ACCESS_H

#include "caller.h"
#include "config.h"
#include "reply.h"
#include "rpc.h"
#include "task.h"

/* Identify the caller of call (caller.h). Returns DOCQ_OK, or fills out with
 * UNAUTHENTICATED and returns DOCQ_ERR. */
int access_caller(const rpc_call *call, docq_caller *caller, rpc_reply *out);

/* Check a client-supplied task id and return its shard. Returns DOCQ_OK, or
 * fills out (INVALID_ARGUMENT for a malformed id, NOT_FOUND for a shard this
 * deployment (cfg) does not have) and returns DOCQ_ERR. */
int access_task_id_check(const docq_config *cfg, const char *task_id, int *shard, rpc_reply *out);

/* Ownership: 1 when caller may see task, else 0. An authenticated caller
 * (API key, client certificate) sees only the tasks it submitted; without
 * authentication tasks belong to no one and every caller sees every task.
 * A task the caller may not see must be answered exactly as an unknown id
 * (access_reply_not_found). */
int access_task_visible(const docq_caller *caller, const docq_task *task);

/* Fill out with NOT_FOUND for task_id: the one answer for ids never issued,
 * expired and other callers'. */
void access_reply_not_found(rpc_reply *out, const char *task_id);

#endif
