/* placeholder: replaced by the real part */
#include "aio.h"
void aio_http_open(lua_State *L) { (void)L; }
