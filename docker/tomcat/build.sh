#!/usr/bin/env bash
# Build the Tomcat image the tests (and users without a registry) run:
# a Debian bookworm rootfs made by debootstrap with Debian's tomcat10
# package (Tomcat 10.1) and a headless JRE, imported into the local Docker
# engine. No registry is needed, only Debian's package mirror.
#
#   docker/tomcat/build.sh [TAG]        (default twlab/tomcat:10.1)
#
# The image is labelled `twlab.image=tomcat`; an existing image with the
# tag is kept (delete it with `docker rmi TAG` to rebuild). Tomcat's default
# ROOT webapp answers /; the seed's /abc is a 404, as with the
# tomcat:8.5-alpine image the seed used. Both close a keep-alive connection
# after 100 requests (maxKeepAliveRequests).
set -euo pipefail
here=$(dirname "$0")
# Tomcat writes its logs, temp and work files under CATALINA_BASE.
export MKDIRS="/var/lib/tomcat10/logs /var/lib/tomcat10/temp /var/lib/tomcat10/work"
exec "$here/../debootstrap-image.sh" "${1:-twlab/tomcat:10.1}" \
  tomcat10,default-jre-headless /usr/share/tomcat10/bin/catalina.sh \
  'ENV CATALINA_HOME=/usr/share/tomcat10 CATALINA_BASE=/var/lib/tomcat10 CATALINA_TMPDIR=/var/lib/tomcat10/temp' \
  'LABEL twlab.image=tomcat' \
  'EXPOSE 8080' \
  'CMD ["/usr/share/tomcat10/bin/catalina.sh", "run"]'
