/* A field's words in one pass, as the regexes of bot/textnorm.py find them.
 *
 * scan(text) returns (raw, spans, hangul, words):
 *   raw     the words of `textnorm.split_words`, NUL-joined, without the commas of numbers and
 *           the dots of acronyms (what `textnorm.raw_words` returns);
 *   spans   each word's start and end offsets in `text`, as native unsigned ints (array "I");
 *   hangul  `textnorm.hangul_runs(text)`: Hangul words only spaced apart, joined, each run
 *           ended by NUL;
 *   words   when every word is ASCII, Hangul syllables or CJK unified ideographs (which NFKC
 *           and case folding leave as they are, ASCII letters aside): the words normalized,
 *           between single spaces (`decide.FieldWords.text`); else None.
 * format_characters(chars) sets the Unicode Cf characters (from unicodedata, at import), which
 * may stand between the Hangul words of one run.
 *
 * The character classes are those of Python's `re` (Modules/_sre/sre.c): \w is
 * Py_UNICODE_ISALNUM or '_', \d is Py_UNICODE_ISDECIMAL, \s is Py_UNICODE_ISSPACE. Each branch
 * below names the part of the pattern it stands for and keeps its order and its backtracking.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static Py_UCS4 *format_chars = NULL; /* sorted */
static Py_ssize_t format_count = 0;

/* [A-Za-z] */
static inline int
is_ascii_letter(Py_UCS4 c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

/* textnorm._HANGUL: syllables, jamo (conjoining, compatibility, extended), halfwidth jamo */
static inline int
is_hangul(Py_UCS4 c)
{
    if (c < 0x1100) {
        return 0;
    }
    return c <= 0x11ff || (c >= 0x3130 && c <= 0x318f) || (c >= 0xa960 && c <= 0xa97f) ||
           (c >= 0xac00 && c <= 0xd7ff) || (c >= 0xffa0 && c <= 0xffdc);
}

/* textnorm._HAN: one ideograph is one word */
static inline int
is_han(Py_UCS4 c)
{
    if (c < 0x3005) {
        return 0;
    }
    return c == 0x3005 || c == 0x3007 || (c >= 0x3400 && c <= 0x4dbf) ||
           (c >= 0x4e00 && c <= 0x9fff) || (c >= 0xf900 && c <= 0xfaff) ||
           (c >= 0x20000 && c <= 0x3134f);
}

/* \w */
static inline int
is_word(Py_UCS4 c)
{
    if (c < 128) {
        return (c >= '0' && c <= '9') || is_ascii_letter(c) || c == '_';
    }
    return Py_UNICODE_ISALNUM(c);
}

/* textnorm._OTHER: [^\W_{_HANGUL}{_HAN}\u02bb\u02bc] */
static inline int
is_other(Py_UCS4 c)
{
    if (c < 128) {
        return (c >= '0' && c <= '9') || is_ascii_letter(c);
    }
    return c != 0x2bb && c != 0x2bc && !is_hangul(c) && !is_han(c) && Py_UNICODE_ISALNUM(c);
}

/* textnorm._LATIN: ASCII letters, also full width */
static inline int
is_latin(Py_UCS4 c)
{
    return is_ascii_letter(c) || (c >= 0xff21 && c <= 0xff3a) || (c >= 0xff41 && c <= 0xff5a);
}

/* textnorm._MARK: combining marks */
static inline int
is_mark(Py_UCS4 c)
{
    return (c >= 0x300 && c <= 0x36f) || (c >= 0x1ab0 && c <= 0x1aff) ||
           (c >= 0x1dc0 && c <= 0x1dff) || (c >= 0x20d0 && c <= 0x20ff) ||
           (c >= 0xfe20 && c <= 0xfe2f);
}

/* \d */
static inline int
is_digit(Py_UCS4 c)
{
    if (c < 128) {
        return c >= '0' && c <= '9';
    }
    return Py_UNICODE_ISDECIMAL(c);
}

static inline int
is_dot(Py_UCS4 c)
{
    return c == '.' || c == 0xff0e;
}

static inline int
is_comma(Py_UCS4 c)
{
    return c == ',' || c == 0xff0c;
}

static int
is_format(Py_UCS4 c)
{
    Py_ssize_t lo = 0, hi = format_count;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (format_chars[mid] < c) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return lo < format_count && format_chars[lo] == c;
}

/* what may stand between the Hangul words of one run: [\s{Cf}] */
static inline int
is_gap(Py_UCS4 c)
{
    return Py_UNICODE_ISSPACE(c) || (format_count && c >= format_chars[0] && is_format(c));
}

typedef struct {
    const Py_UCS4 *s; /* the text as UCS4 (copied unless it is stored so) */
    Py_ssize_t n;
} Text;

#define AT(t, i) ((t)->s[(i)])

/* The end of the word of textnorm._WORD_AROUND that starts at `i`, or -1 when none does. */
static Py_ssize_t
word_at(const Text *t, Py_ssize_t i)
{
    const Py_ssize_t n = t->n;
    const Py_UCS4 c = AT(t, i);
    Py_ssize_t j;

    /* (?=[^\W_]|[{_HANGUL}{_HAN}]) */
    if (!((c != '_' && is_word(c)) || is_hangul(c) || is_han(c))) {
        return -1;
    }
    /* [A-Za-z]{2,}(?!{_OTHER}|{_MARK}): a shorter run is followed by a letter, so only the
       whole run can match */
    if (is_ascii_letter(c)) {
        for (j = i + 1; j < n && is_ascii_letter(AT(t, j)); j++) {
        }
        if (j - i >= 2 && !(j < n && (is_other(AT(t, j)) || is_mark(AT(t, j))))) {
            return j;
        }
    }
    /* [{_HANGUL}]+ (and _HANGUL_WORD, tried later, finds the same) */
    if (is_hangul(c)) {
        for (j = i + 1; j < n && is_hangul(AT(t, j)); j++) {
        }
        return j;
    }
    /* _NUMBER_WORD: (?=\d)(?<!{_OTHER})(\d{1,3}(?:[,，]\d{3})+)(?!{_OTHER}) */
    if (is_digit(c) && (i == 0 || !is_other(AT(t, i - 1)))) {
        for (Py_ssize_t d = 3; d >= 1; d--) {
            Py_ssize_t p = i, groups = 0;
            while (p < n && p < i + d && is_digit(AT(t, p))) {
                p++;
            }
            if (p != i + d) {
                continue;
            }
            while (p + 3 < n && is_comma(AT(t, p)) && is_digit(AT(t, p + 1)) &&
                   is_digit(AT(t, p + 2)) && is_digit(AT(t, p + 3))) {
                p += 4;
                groups++;
            }
            for (; groups >= 1; groups--) { /* greedy, then fewer groups */
                Py_ssize_t end = i + d + 4 * groups;
                if (end == n || !is_other(AT(t, end))) {
                    return end;
                }
            }
        }
    }
    /* _ACRONYM_WORD:
       (?={_LATIN}[.．])(?<!{_OTHER})(?<![.．])((?:{_LATIN}[.．])+{_LATIN}(?!{_OTHER})[.．]?) */
    if (is_latin(c) && i + 1 < n && is_dot(AT(t, i + 1)) &&
        (i == 0 || (!is_other(AT(t, i - 1)) && !is_dot(AT(t, i - 1))))) {
        Py_ssize_t pairs = 0;
        for (j = i; j + 1 < n && is_latin(AT(t, j)) && is_dot(AT(t, j + 1)); j += 2) {
            pairs++;
        }
        for (; pairs >= 1; pairs--) { /* greedy, then fewer letter-dot pairs */
            Py_ssize_t p = i + 2 * pairs;
            if (p < n && is_latin(AT(t, p)) && (p + 1 == n || !is_other(AT(t, p + 1)))) {
                return p + 1 < n && is_dot(AT(t, p + 1)) ? p + 2 : p + 1;
            }
        }
    }
    /* _HAN_WORD: one ideograph */
    if (is_han(c)) {
        return i + 1;
    }
    /* _OTHER_WORD: {_OTHER}+(?:{_MARK}+{_OTHER}*)* */
    if (is_other(c)) {
        for (j = i + 1; j < n && (is_other(AT(t, j)) || is_mark(AT(t, j))); j++) {
        }
        return j;
    }
    return -1;
}

/* Append the Hangul of textnorm._runs()'s matches to `out`, each run ended by NUL. */
static Py_ssize_t
hangul_runs(const Text *t, Py_UCS4 *out)
{
    const Py_ssize_t n = t->n;
    Py_ssize_t i = 0, o = 0;
    while (i < n) {
        if (!is_hangul(AT(t, i))) {
            i++;
            continue;
        }
        /* [{_HANGUL}]+(?:{gap}[{_HANGUL}]+)* */
        for (;;) {
            Py_ssize_t g;
            while (i < n && is_hangul(AT(t, i))) {
                out[o++] = AT(t, i);
                i++;
            }
            for (g = i; g < n && is_gap(AT(t, g)); g++) {
            }
            if (g == i || g == n || !is_hangul(AT(t, g))) {
                break;
            }
            i = g;
        }
        out[o++] = 0;
    }
    return o;
}

static PyObject *
scan(PyObject *module, PyObject *arg)
{
    Text t;
    Py_UCS4 *raw = NULL, *runs = NULL, *wide = NULL;
    int plain = 1; /* every word is ASCII, Hangul syllables or CJK unified ideographs */
    unsigned int *spans = NULL;
    Py_ssize_t n, i, r = 0, words = 0, capacity, o = 0;
    PyObject *raw_obj = NULL, *spans_obj = NULL, *runs_obj = NULL, *text_obj = NULL;
    PyObject *result = NULL;

    (void)module;

    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "scan() argument must be str, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(arg) < 0) {
        return NULL;
    }
#endif
    n = PyUnicode_GET_LENGTH(arg);
    if ((size_t)n > UINT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "text too long for unsigned int offsets");
        return NULL;
    }
    t.n = n;
    if (PyUnicode_KIND(arg) == PyUnicode_4BYTE_KIND) {
        t.s = PyUnicode_4BYTE_DATA(arg);
    }
    else { /* one widening copy, then plain indexing in every loop */
        wide = PyUnicode_AsUCS4Copy(arg);
        if (wide == NULL) {
            return NULL;
        }
        t.s = wide;
    }

    /* at most one word per character; a NUL after each but the last */
    raw = PyMem_New(Py_UCS4, n + n + 1);
    capacity = 16;
    spans = PyMem_New(unsigned int, capacity);
    if (raw == NULL || spans == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n;) {
        Py_ssize_t end = word_at(&t, i);
        if (end < 0) {
            i++;
            continue;
        }
        if (2 * words + 2 > capacity) {
            unsigned int *more = spans;
            capacity *= 2;
            if (PyMem_Resize(more, unsigned int, capacity) == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            spans = more;
        }
        spans[2 * words] = (unsigned int)i;
        spans[2 * words + 1] = (unsigned int)end;
        if (words++) {
            raw[r++] = 0;
        }
        for (; i < end; i++) { /* only numbers and acronyms hold these */
            Py_UCS4 c = AT(&t, i);
            if (!is_comma(c) && !is_dot(c)) {
                raw[r++] = c;
                if (c >= 128 && !(c >= 0xac00 && c <= 0xd7a3) && !(c >= 0x4e00 && c <= 0x9fff)) {
                    plain = 0;
                }
            }
        }
    }
    raw_obj = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, raw, r);
    if (raw_obj == NULL) {
        goto done;
    }
    spans_obj = PyBytes_FromStringAndSize((const char *)spans,
                                          (Py_ssize_t)(2 * words * sizeof(unsigned int)));
    if (spans_obj == NULL) {
        goto done;
    }
    if (!PyUnicode_IS_ASCII(arg)) {
        runs = PyMem_New(Py_UCS4, n + n + 1);
        if (runs == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        o = hangul_runs(&t, runs);
    }
    runs_obj = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, runs, o);
    if (runs_obj == NULL) {
        goto done;
    }
    if (plain) {
        /* what NFKC and case folding make of such words: ASCII letters in lower case */
        Py_UCS4 *text = raw; /* reused: the raw words are already a str */
        if (PyMem_Resize(text, Py_UCS4, r + 2) == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        raw = text;
        memmove(text + 1, text, (size_t)r * sizeof(Py_UCS4));
        text[0] = text[r + 1] = ' ';
        for (i = 1; i <= r; i++) {
            if (text[i] == 0) {
                text[i] = ' ';
            }
            else if (text[i] >= 'A' && text[i] <= 'Z') {
                text[i] += 'a' - 'A';
            }
        }
        text_obj = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, text, r + 2);
        if (text_obj == NULL) {
            goto done;
        }
    }
    else {
        text_obj = Py_NewRef(Py_None);
    }
    result = PyTuple_Pack(4, raw_obj, spans_obj, runs_obj, text_obj);
done:
    Py_XDECREF(raw_obj);
    Py_XDECREF(spans_obj);
    Py_XDECREF(runs_obj);
    Py_XDECREF(text_obj);
    PyMem_Free(raw);
    PyMem_Free(spans);
    PyMem_Free(runs);
    PyMem_Free(wide);
    return result;
}

static int
compare_chars(const void *a, const void *b)
{
    Py_UCS4 x = *(const Py_UCS4 *)a, y = *(const Py_UCS4 *)b;
    return (x > y) - (x < y);
}

static PyObject *
set_format_characters(PyObject *module, PyObject *arg)
{
    Py_UCS4 *chars;
    Py_ssize_t n;

    (void)module;
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "format_characters() argument must be str");
        return NULL;
    }
    chars = PyUnicode_AsUCS4Copy(arg);
    if (chars == NULL) {
        return NULL;
    }
    n = PyUnicode_GET_LENGTH(arg);
    qsort(chars, (size_t)n, sizeof(Py_UCS4), compare_chars);
    PyMem_Free(format_chars);
    format_chars = chars;
    format_count = n;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O,
     "scan(text) -> (raw words NUL-joined, word spans as array 'I' bytes, Hangul runs, "
     "normalized words between spaces or None)"},
    {"format_characters", set_format_characters, METH_O,
     "format_characters(chars): the Cf characters that may stand inside a Hangul run"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bot._words",
    .m_doc = "A field's words, their offsets and its Hangul runs in one pass (bot/textnorm.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__words(void)
{
    return PyModule_Create(&module);
}
