/* placeholder replaced by the delivery worker; see worker.c history */
#include "postgres.h"
#include "notify.h"

bool		notify_am_worker = false;

void
notify_register_worker(void)
{
}
