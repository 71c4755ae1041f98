/* ai_outcome.h -- what a finished AI call means for its task.
 *
 * The rules, apart from the HTTP client and from Redis so that they can be
 * tested and fuzzed alone: a pure function from what the call brought back
 * (an ai_result: no answer, an answer too large, or an HTTP status with a
 * body) to a verdict and, unless it succeeded, the error the task shows.
 *
 *   2xx with a body of valid UTF-8 within the limit   SUCCESS, the body is the result
 *   and without a NUL byte
 *   no answer (connection, timeout), 429, 5xx         TRANSIENT (retry.h), Retry-After kept
 *   other statuses, a body that is not UTF-8 or       PERMANENT
 *   holds a NUL byte (a Task.result is a string that
 *   protobuf-c carries as a C string), or an answer
 *   larger than DOCQ_MAX_RESULT_BYTES
 *
 * An error quotes at most the first AI_SNIPPET_MAX bytes of an error
 * answer's body, and only when they are printable UTF-8 text. */
#ifndef DOCQ_AI_OUTCOME_H
#define DOCQ_AI_OUTCOME_H

#include <stddef.h>

#include "ai_client.h"

#define AI_OUTCOME_ERROR_MAX 512
#define AI_SNIPPET_MAX 200

typedef enum ai_verdict {
    AI_SUCCESS,    /* Store the body as the task's result. */
    AI_TRANSIENT,  /* Retry while attempts are left. */
    AI_PERMANENT   /* Fail the task now. */
} ai_verdict;

typedef struct ai_outcome {
    ai_verdict verdict;
    long retry_after_ms;              /* TRANSIENT: what the answer's Retry-After asked, or 0. */
    char error[AI_OUTCOME_ERROR_MAX]; /* Unless SUCCESS: the reason, one line of text. */
} ai_outcome;

/* Decide what r (a finished call, as ai_client_next gives it) means for its
 * task, when results may be at most max_result bytes. Reads r only; fills
 * out. */
void ai_outcome_decide(const ai_result *r, size_t max_result, ai_outcome *out);

#endif
