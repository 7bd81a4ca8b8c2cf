/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Doubly linked lists threaded through the items: an item has "prev" and
 * "next" pointers, the owner a pointer to the first. Header-only, so any
 * layer (the plugins included) may use it. */
#pragma once

/* Puts item first. */
#define LIST_PREPEND(head, item)                                \
        do {                                                    \
                __typeof__(item) _lp_item = (item);             \
                _lp_item->prev = NULL;                          \
                _lp_item->next = (head);                        \
                if (_lp_item->next)                             \
                        _lp_item->next->prev = _lp_item;        \
                (head) = _lp_item;                              \
        } while (0)

/* Puts item last: walks the list, for the few that keep an order. */
#define LIST_APPEND(head, item)                                 \
        do {                                                    \
                __typeof__(item) _la_item = (item), _la_tail = (head); \
                _la_item->next = NULL;                          \
                while (_la_tail && _la_tail->next)              \
                        _la_tail = _la_tail->next;              \
                _la_item->prev = _la_tail;                      \
                if (_la_tail)                                   \
                        _la_tail->next = _la_item;              \
                else                                            \
                        (head) = _la_item;                      \
        } while (0)

/* Takes item out; its own pointers are left as they were. */
#define LIST_REMOVE(head, item)                                 \
        do {                                                    \
                __typeof__(item) _lr_item = (item);             \
                if (_lr_item->prev)                             \
                        _lr_item->prev->next = _lr_item->next;  \
                else                                            \
                        (head) = _lr_item->next;                \
                if (_lr_item->next)                             \
                        _lr_item->next->prev = _lr_item->prev;  \
        } while (0)

/* Singly linked FIFO queues: an item has "next", the owner pointers to the
 * first and the last. */
#define QUEUE_PUSH(head, tail, item)                            \
        do {                                                    \
                __typeof__(item) _qp_item = (item);             \
                _qp_item->next = NULL;                          \
                if (tail)                                       \
                        (tail)->next = _qp_item;                \
                else                                            \
                        (head) = _qp_item;                      \
                (tail) = _qp_item;                              \
        } while (0)

/* The first item, taken out; NULL when the queue is empty. */
#define QUEUE_POP(head, tail)                                   \
        ({                                                      \
                __typeof__(head) _qo_item = (head);             \
                if (_qo_item) {                                 \
                        (head) = _qo_item->next;                \
                        if (!(head))                            \
                                (tail) = NULL;                  \
                }                                               \
                _qo_item;                                       \
        })
