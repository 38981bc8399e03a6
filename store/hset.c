/*
 * hset.c - in-memory hash tables for one-run bookkeeping (see hset.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "hset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fp.h"

uint64_t hset_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void u64set_insert(uint64_t *v, size_t cap, uint64_t key)
{
	size_t i = (size_t)hset_mix64(key) & (cap - 1);

	while (v[i])
		i = (i + 1) & (cap - 1);
	v[i] = key;
}

int u64set_add(struct u64set *s, uint64_t key)
{
	size_t i;

	if (u64set_has(s, key))
		return 0;
	if ((s->n + 1) * 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		uint64_t *v = calloc(cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		for (i = 0; i < s->cap; i++)
			if (s->v[i])
				u64set_insert(v, cap, s->v[i]);
		free(s->v);
		s->v = v;
		s->cap = cap;
	}
	u64set_insert(s->v, s->cap, key);
	s->n++;
	return 1;
}

bool u64set_has(const struct u64set *s, uint64_t key)
{
	size_t i;

	if (!s->cap)
		return false;
	for (i = (size_t)hset_mix64(key) & (s->cap - 1); s->v[i]; i = (i + 1) & (s->cap - 1))
		if (s->v[i] == key)
			return true;
	return false;
}

void u64set_release(struct u64set *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static size_t u64map_slot(const uint64_t *k, size_t cap, uint64_t key)
{
	size_t i = (size_t)hset_mix64(key) & (cap - 1);

	while (k[i] && k[i] != key)
		i = (i + 1) & (cap - 1);
	return i;
}

int u64map_put(struct u64map *m, uint64_t key, uint64_t val)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 1024;
		uint64_t *k = calloc(cap, sizeof(*k)), *v = calloc(cap, sizeof(*v));

		if (!k || !v) {
			free(k);
			free(v);
			return -ENOMEM;
		}
		for (i = 0; i < m->cap; i++) {
			if (m->k[i]) {
				size_t j = u64map_slot(k, cap, m->k[i]);

				k[j] = m->k[i];
				v[j] = m->v[i];
			}
		}
		free(m->k);
		free(m->v);
		m->k = k;
		m->v = v;
		m->cap = cap;
	}
	i = u64map_slot(m->k, m->cap, key);
	if (!m->k[i]) {
		m->k[i] = key;
		m->n++;
	}
	m->v[i] = val;
	return 0;
}

bool u64map_get(const struct u64map *m, uint64_t key, uint64_t *val)
{
	size_t i;

	if (!m->cap)
		return false;
	i = u64map_slot(m->k, m->cap, key);
	if (!m->k[i])
		return false;
	*val = m->v[i];
	return true;
}

void u64map_release(struct u64map *m)
{
	free(m->k);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

static struct pathmap_ent *pathmap_slot(struct pathmap_ent *v, size_t cap, uint64_t h,
					const uint8_t *key, size_t len)
{
	size_t i = (size_t)h & (cap - 1);

	while (v[i].key && !(v[i].h == h && v[i].len == len && !memcmp(v[i].key, key, len)))
		i = (i + 1) & (cap - 1);
	return &v[i];
}

int pathmap_put(struct pathmap *m, const uint8_t *key, size_t len, uint64_t val)
{
	uint64_t h = fp_xxh3(key, len);
	struct pathmap_ent *e;

	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 1024;
		struct pathmap_ent *v = calloc(cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		for (size_t i = 0; i < m->cap; i++)
			if (m->v[i].key)
				*pathmap_slot(v, cap, m->v[i].h, m->v[i].key, m->v[i].len) = m->v[i];
		free(m->v);
		m->v = v;
		m->cap = cap;
	}
	e = pathmap_slot(m->v, m->cap, h, key, len);
	if (!e->key) {
		e->key = malloc(len ? len : 1);
		if (!e->key)
			return -ENOMEM;
		memcpy(e->key, key, len);
		e->len = len;
		e->h = h;
		m->n++;
	}
	e->val = val;
	return 0;
}

bool pathmap_get(const struct pathmap *m, const uint8_t *key, size_t len, uint64_t *val)
{
	const struct pathmap_ent *e;

	if (!m->cap)
		return false;
	e = pathmap_slot(m->v, m->cap, fp_xxh3(key, len), key, len);
	if (!e->key)
		return false;
	*val = e->val;
	return true;
}

void pathmap_release(struct pathmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->v[i].key);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

int fpset_add(struct fpset *s, const struct fp256 *id)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct fp256 *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = *id;
	s->sorted = false;
	return 0;
}

static int fp_cmp(const void *a, const void *b)
{
	return memcmp(a, b, FP_LEN);
}

bool fpset_has(struct fpset *s, const struct fp256 *id)
{
	if (!s->n)
		return false;
	if (!s->sorted) {
		size_t k = 1;

		qsort(s->v, s->n, sizeof(*s->v), fp_cmp);
		for (size_t i = 1; i < s->n; i++)
			if (!fp_equal(&s->v[i], &s->v[k - 1]))
				s->v[k++] = s->v[i];
		s->n = k;
		s->sorted = true;
	}
	return bsearch(id, s->v, s->n, sizeof(*s->v), fp_cmp) != NULL;
}

void fpset_release(struct fpset *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}
