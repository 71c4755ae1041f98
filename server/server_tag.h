/* server_tag.h -- the start of every tag put on a server thread's completion
 * queue (server.c polls the queues; call_stream.c and server.c put tags on
 * them). */
#ifndef DOCQ_SERVER_TAG_H
#define DOCQ_SERVER_TAG_H

/* The function that handles the tag's completion (success as the event
 * reports it). */
typedef struct server_tag {
    void (*done)(struct server_tag *tag, int success);
} server_tag;

#endif
