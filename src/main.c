/*
 * rdd-guest: the Rancher Desktop guest socket bridge.
 *
 * This is the agent that runs inside the Rancher Desktop WSL2 VM (the `wsl`
 * profile of the openSUSE appliance; Lima VMs do not use it). It listens on
 * AF_VSOCK port 6660, where the Windows host's rancher-desktop-daemon dials
 * in to serve the docker CLI's named pipe, and forwards each connection to
 * the Docker engine's socket, /var/run/docker.sock, byte for byte, with
 * half-close carried through in both directions.
 *
 * Why the CID check: every WSL2 distro on a Windows machine runs in the same
 * utility VM and shares one vsock namespace, so any process in any other
 * distro can dial port 6660. Only the host (CID 2, VMADDR_CID_HOST) may pass;
 * anyone else would otherwise get root on the Docker engine.
 *
 * main: the command line, then the server; exit status 0 clean, 1 runtime
 * failure, 2 usage error.
 */
#include <stdio.h>
#include <stdlib.h>

#include "descriptors.h"
#include "log.h"
#include "options.h"
#include "server.h"

int main(int argc, char **argv)
{
	struct config cfg;

	descriptors_open_stdio();
	switch (options_parse(&cfg, argc, argv, stdout, stderr)) {
	case OPTIONS_EXIT_OK:
		return 0;
	case OPTIONS_USAGE_ERROR:
		return 2;
	case OPTIONS_RUN:
		break;
	}
	log_max_level = cfg.log_level;
	if (descriptors_check_room(cfg.max_connections) < 0)
		return 1;
	return server_run(&cfg);
}
