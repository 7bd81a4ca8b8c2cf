/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

/* A polkit text agent for our process, as systemctl starts one: when
 * vmsigd asks polkit about a call that allows interactive authorization,
 * polkit asks for the password on our terminal. Returns the agent's pid,
 * or 0 when none was started (no terminal, root, a remote bus, or
 * --no-ask-password). */
pid_t ctl_polkit_agent_open(void);
void ctl_polkit_agent_close(pid_t pid);
