/* reflection_index.c -- files, symbols and services of a descriptor set.
 * See reflection_index.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "reflection_index.h"

typedef struct symbol {
    char *name;  /* Fully qualified, without a leading dot. */
    int file;
} symbol;

typedef struct file_entry {
    const char *name;  /* Points into the parsed set. */
    uint8_t *bytes;    /* Its FileDescriptorProto, serialized. */
    size_t len;
    int *deps;         /* Indexes of the files it imports. */
    size_t ndeps;
} file_entry;

struct docq_reflection_index {
    Google__Protobuf__FileDescriptorSet *set;
    file_entry *files;
    int nfiles;
    symbol *symbols;
    size_t nsymbols, cap;
    char **services;   /* Names; each also in symbols. */
    int nservices;
    int oom;
};

/* Add prefix.name as a symbol of file; returns the stored name or NULL. */
static char *add_symbol(docq_reflection_index *idx, const char *prefix, const char *name, int file) {
    if (idx->nsymbols == idx->cap) {
        size_t cap = idx->cap ? idx->cap * 2 : 64;
        symbol *grown = realloc(idx->symbols, cap * sizeof(symbol));
        if (!grown) return idx->oom = 1, NULL;
        idx->symbols = grown;
        idx->cap = cap;
    }
    size_t n = strlen(prefix) + strlen(name) + 2;
    char *full = malloc(n);
    if (!full) return idx->oom = 1, NULL;
    snprintf(full, n, "%s%s%s", prefix, *prefix ? "." : "", name);
    idx->symbols[idx->nsymbols].name = full;
    idx->symbols[idx->nsymbols++].file = file;
    return full;
}

static void add_enums(docq_reflection_index *idx, const char *prefix, Google__Protobuf__EnumDescriptorProto **enums,
                      size_t n, int file) {
    for (size_t i = 0; i < n; i++) {
        char *full = add_symbol(idx, prefix, enums[i]->name, file);
        /* Enum values are scoped like C++ enums: siblings of their enum. */
        for (size_t v = 0; full && v < enums[i]->n_value; v++) add_symbol(idx, prefix, enums[i]->value[v]->name, file);
    }
}

static void add_messages(docq_reflection_index *idx, const char *prefix, Google__Protobuf__DescriptorProto **msgs,
                         size_t n, int file) {
    for (size_t i = 0; i < n; i++) {
        char *full = add_symbol(idx, prefix, msgs[i]->name, file);
        if (!full) return;
        add_messages(idx, full, msgs[i]->nested_type, msgs[i]->n_nested_type, file);
        add_enums(idx, full, msgs[i]->enum_type, msgs[i]->n_enum_type, file);
    }
}

static void add_services(docq_reflection_index *idx, const char *prefix, const Google__Protobuf__FileDescriptorProto *f,
                         int file) {
    for (size_t i = 0; i < f->n_service; i++) {
        char *full = add_symbol(idx, prefix, f->service[i]->name, file);
        if (!full) return;
        char **grown = realloc(idx->services, (size_t)(idx->nservices + 1) * sizeof(char *));
        if (!grown) {
            idx->oom = 1;
            return;
        }
        idx->services = grown;
        idx->services[idx->nservices++] = full;
        for (size_t m = 0; m < f->service[i]->n_method; m++) add_symbol(idx, full, f->service[i]->method[m]->name, file);
    }
}

/* Serialize file i, index its symbols and resolve its imports. */
static void index_file(docq_reflection_index *idx, int i) {
    const Google__Protobuf__FileDescriptorProto *f = idx->set->file[i];
    file_entry *e = &idx->files[i];
    const char *pkg = f->package ? f->package : "";
    e->name = f->name ? f->name : "";
    e->len = protobuf_c_message_get_packed_size(&f->base);
    e->bytes = malloc(e->len ? e->len : 1);
    e->deps = calloc(f->n_dependency + 1, sizeof(int));
    if (!e->bytes || !e->deps) {
        idx->oom = 1;
        return;
    }
    protobuf_c_message_pack(&f->base, e->bytes);
    add_messages(idx, pkg, f->message_type, f->n_message_type, i);
    add_enums(idx, pkg, f->enum_type, f->n_enum_type, i);
    add_services(idx, pkg, f, i);
}

static void resolve_deps(docq_reflection_index *idx) {
    for (int i = 0; i < idx->nfiles; i++) {
        const Google__Protobuf__FileDescriptorProto *f = idx->set->file[i];
        for (size_t d = 0; d < f->n_dependency; d++) {
            int j = docq_reflection_file_by_name(idx, f->dependency[d]);
            if (j >= 0) idx->files[i].deps[idx->files[i].ndeps++] = j;
        }
    }
}

docq_reflection_index *docq_reflection_index_create(const uint8_t *set, size_t len, docq_error *err) {
    docq_reflection_index *idx = calloc(1, sizeof(*idx));
    if (!idx) return docq_error_set(err, DOCQ_ERR, "out of memory"), NULL;
    idx->set = google__protobuf__file_descriptor_set__unpack(NULL, len, set);
    if (!idx->set) {
        free(idx);
        return docq_error_set(err, DOCQ_EINVAL, "the embedded descriptor set does not parse"), NULL;
    }
    idx->nfiles = (int)idx->set->n_file;
    idx->files = calloc((size_t)idx->nfiles + 1, sizeof(file_entry));
    if (!idx->files) idx->oom = 1;
    for (int i = 0; i < idx->nfiles && !idx->oom; i++) index_file(idx, i);
    if (!idx->oom) resolve_deps(idx);
    if (idx->oom) {
        docq_reflection_index_free(idx);
        return docq_error_set(err, DOCQ_ERR, "out of memory"), NULL;
    }
    return idx;
}

void docq_reflection_index_free(docq_reflection_index *idx) {
    if (!idx) return;
    for (int i = 0; idx->files && i < idx->nfiles; i++) {
        free(idx->files[i].bytes);
        free(idx->files[i].deps);
    }
    for (size_t i = 0; i < idx->nsymbols; i++) free(idx->symbols[i].name);
    free(idx->files);
    free(idx->symbols);
    free(idx->services);
    google__protobuf__file_descriptor_set__free_unpacked(idx->set, NULL);
    free(idx);
}

int docq_reflection_file_by_name(const docq_reflection_index *idx, const char *name) {
    for (int i = 0; i < idx->nfiles; i++)
        if (idx->files[i].name && strcmp(idx->files[i].name, name) == 0) return i;
    return -1;
}

int docq_reflection_file_by_symbol(const docq_reflection_index *idx, const char *symbol) {
    if (symbol[0] == '.') symbol++;
    for (size_t i = 0; i < idx->nsymbols; i++)
        if (strcmp(idx->symbols[i].name, symbol) == 0) return idx->symbols[i].file;
    return -1;
}

/* Depth-first walk adding each file once. */
static void walk(const docq_reflection_index *idx, int file, int *out, size_t cap, size_t *n) {
    for (size_t i = 0; i < *n; i++)
        if (out[i] == file) return;
    if (*n == cap) return;
    out[(*n)++] = file;
    for (size_t d = 0; d < idx->files[file].ndeps; d++) walk(idx, idx->files[file].deps[d], out, cap, n);
}

size_t docq_reflection_closure(const docq_reflection_index *idx, int file, int *out, size_t cap) {
    size_t n = 0;
    if (file >= 0 && file < idx->nfiles) walk(idx, file, out, cap, &n);
    return n;
}

const uint8_t *docq_reflection_file_bytes(const docq_reflection_index *idx, int file, size_t *len) {
    *len = idx->files[file].len;
    return idx->files[file].bytes;
}

int docq_reflection_nfiles(const docq_reflection_index *idx) { return idx->nfiles; }

int docq_reflection_nservices(const docq_reflection_index *idx) { return idx->nservices; }

const char *docq_reflection_service(const docq_reflection_index *idx, int i) { return idx->services[i]; }
