/* The abstract server of the Arduino API (WiFiServer is one). */
#ifndef SERVER_H
#define SERVER_H

#include "Print.h"

class Server : public Print {
public:
    virtual void begin() = 0;
};

#endif
