/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Long output through a pager, as systemctl does: when stdout is a
 * terminal, list, status, dump-memctx and --help start one before they
 * print. The pager is $VMSIG_PAGER, else $SYSTEMD_PAGER, else $PAGER, else
 * less (with LESS=FRXMK unless $LESS is set), else more; an empty or "cat"
 * pager, --no-pager, or stdout not being a terminal mean none. */

/* Starts the pager, if one is wanted and none runs yet: stdout (and stderr,
 * if a terminal) then write into it. Never fails: without a pager, output
 * goes where it went. */
void ctl_pager_open(void);

/* Flushes our output, ends the pager's input and waits for the human to
 * quit it. Does nothing without a pager. */
void ctl_pager_close(void);
