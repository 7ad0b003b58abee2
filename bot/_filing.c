/* The candidate step of the rule index in C, over the flat arrays of bot/filing.py.
 *
 * candidates(present, filed_at, filed, records, always) returns, in rule order and each once,
 * the rules filed under a key id of `present` whose other groups each hold a key id of
 * `present`, and the rules of `always`:
 *   present    the key ids found in an article (an iterable of ints: the scan's set); ids that
 *              are negative or not below the number of keys are not filed anywhere;
 *   filed_at   per key id k, filed[filed_at[k]:filed_at[k + 1]] are the rules filed under k
 *              (so the number of keys is len(filed_at) - 1);
 *   filed      each rule filed as the offset of its record in `records`;
 *   records    per rule filed: its position, the number of its other groups, then each of
 *              them as its length and its key ids, rarest group first;
 *   always     the positions of the rules without a required group.
 * Every array is an array("I"). The arrays are checked as they are read: an index out of its
 * array raises ValueError, never reads past it.
 *
 * The article's key ids are set in a bitmap of the keys (an eighth of a byte per key), so a
 * rule's groups are tested by one bit each; only the lists of the present keys, and the
 * records of the rules in them (one place each, most of them one cache line), are read.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned int uint;

/* An array("I") held for the call. */
typedef struct {
    Py_buffer view;
    const uint *items;
    Py_ssize_t length;
} Array;

static int
array_get(PyObject *obj, Array *array, const char *name)
{
    if (PyObject_GetBuffer(obj, &array->view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        return -1;
    }
    if (array->view.itemsize != (Py_ssize_t)sizeof(uint) || array->view.format == NULL ||
        strcmp(array->view.format, "I") != 0) {
        PyBuffer_Release(&array->view);
        PyErr_Format(PyExc_TypeError, "candidates(): %s must be an array('I')", name);
        return -1;
    }
    array->items = (const uint *)array->view.buf;
    array->length = array->view.len / (Py_ssize_t)sizeof(uint);
    return 0;
}

static int
malformed(const char *what)
{
    PyErr_Format(PyExc_ValueError, "candidates(): malformed filing (%s)", what);
    return -1;
}

static int
compare_uints(const void *a, const void *b)
{
    uint x = *(const uint *)a, y = *(const uint *)b;
    return (x > y) - (x < y);
}

/* A growing list of rule positions or key ids. */
typedef struct {
    uint *items;
    Py_ssize_t length, room;
} Ids;

static int
ids_add(Ids *ids, uint id)
{
    if (ids->length == ids->room) {
        Py_ssize_t room = ids->room ? 2 * ids->room : 64;
        uint *items = PyMem_Realloc(ids->items, (size_t)room * sizeof(uint));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        ids->items = items;
        ids->room = room;
    }
    ids->items[ids->length++] = id;
    return 0;
}

/* Rule `*rule` of the record at `at`, when each of its other groups holds a present key: 1
 * when they all do, 0 when one does not, -1 on a malformed filing. */
static int
holds_others(Py_ssize_t at, uint *rule, const Array *records, const unsigned char *bits,
             Py_ssize_t keys)
{
    const uint *items = records->items;
    Py_ssize_t length = records->length;
    uint groups;

    if (at + 2 > length) {
        return malformed("a record past records");
    }
    *rule = items[at];
    groups = items[at + 1];
    for (at += 2; groups > 0; groups--) {
        Py_ssize_t stop;
        uint held = 0;
        if (at >= length || (stop = at + 1 + (Py_ssize_t)items[at]) > length) {
            return malformed("a group past records");
        }
        for (at++; at < stop; at++) { /* a group's few keys all tested: no branch to miss */
            uint key = items[at];
            if ((Py_ssize_t)key >= keys) {
                return malformed("a key id past filed_at");
            }
            held |= bits[key >> 3] >> (key & 7);
        }
        if (!(held & 1)) {
            return 0;
        }
    }
    return 1;
}

static PyObject *
candidates(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *names[] = {"filed_at", "filed", "records", "always"};
    Array arrays[4];
    int held = 0;
    unsigned char *bits = NULL;
    Ids present = {NULL, 0, 0}, found = {NULL, 0, 0};
    const Array *filed_at = &arrays[0], *filed = &arrays[1], *records = &arrays[2],
                *always = &arrays[3];
    PyObject *iterator = NULL, *item, *result = NULL;
    Py_ssize_t keys, i, n;

    (void)module;
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "candidates() takes 5 arguments (%zd given)", nargs);
        return NULL;
    }
    for (; held < 4; held++) {
        if (array_get(args[held + 1], &arrays[held], names[held]) < 0) {
            goto done;
        }
    }
    keys = filed_at->length - 1;
    if (keys < 0) {
        malformed("an empty filed_at");
        goto done;
    }
    bits = PyMem_Calloc((size_t)(keys >> 3) + 1, 1);
    if (bits == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* The present keys that are filed: each one's bit, then (below) each one's rules. */
    iterator = PyObject_GetIter(args[0]);
    if (iterator == NULL) {
        goto done;
    }
    while ((item = PyIter_Next(iterator)) != NULL) {
        Py_ssize_t key = PyLong_AsSsize_t(item);
        Py_DECREF(item);
        if (key == -1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
                goto done;
            }
            PyErr_Clear(); /* far past any key: not filed */
            continue;
        }
        if (key >= 0 && key < keys) {
            bits[key >> 3] |= (unsigned char)(1u << (key & 7));
            if (ids_add(&present, (uint)key) < 0) {
                goto done;
            }
        }
    }
    if (PyErr_Occurred()) {
        goto done;
    }
    for (i = 0; i < present.length; i++) {
        uint key = present.items[i];
        Py_ssize_t at = filed_at->items[key], end = filed_at->items[key + 1];
        if (at > end || end > filed->length) {
            malformed("filed_at out of filed");
            goto done;
        }
        for (; at < end; at++) {
            uint rule;
            int holds = holds_others(filed->items[at], &rule, records, bits, keys);
            if (holds < 0 || (holds && ids_add(&found, rule) < 0)) {
                goto done;
            }
        }
    }
    for (i = 0; i < always->length; i++) {
        if (ids_add(&found, always->items[i]) < 0) {
            goto done;
        }
    }
    /* In rule order, each once (a rule filed under two present keys was found twice). */
    if (found.length > 1) {
        qsort(found.items, (size_t)found.length, sizeof(uint), compare_uints);
    }
    n = 0;
    for (i = 0; i < found.length; i++) {
        if (n == 0 || found.items[i] != found.items[n - 1]) {
            found.items[n++] = found.items[i];
        }
    }
    result = PyList_New(n);
    if (result == NULL) {
        goto done;
    }
    for (i = 0; i < n; i++) {
        PyObject *rule = PyLong_FromUnsignedLong(found.items[i]);
        if (rule == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, rule);
    }
done:
    Py_XDECREF(iterator);
    PyMem_Free(bits);
    PyMem_Free(present.items);
    PyMem_Free(found.items);
    while (held > 0) {
        PyBuffer_Release(&arrays[--held].view);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"candidates", (PyCFunction)(void (*)(void))candidates, METH_FASTCALL,
     "candidates(present, filed_at, filed, records, always) -> the rules filed under "
     "a present key whose other groups each hold one, and those always candidates, in rule "
     "order"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bot._filing",
    .m_doc = "The rule index's candidate step over its flat arrays (bot/filing.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__filing(void)
{
    return PyModule_Create(&module);
}
