#include "HilFeeds_Client.h"

bool HilFeeds_Client::connectServer()
{
    return client->connect(servername, portnum) != 0;
}

bool HilFeeds_Client::disconnectServer()
{
    if (client->connected())
        client->stop();
    return true;
}

/* Reads up to maxlen bytes, waiting at most timeout ms for each. */
uint16_t HilFeeds_Client::readPacket(uint8_t *buf, uint16_t maxlen, int16_t timeout)
{
    uint16_t len = 0;
    int16_t t = timeout;
    while (client->connected() || client->available()) {
        while (client->available()) {
            buf[len++] = (uint8_t)client->read();
            t = timeout;
            if (len == maxlen)
                return len;
        }
        if (t <= 0)
            break;
        t -= 5;
        delay(5);
    }
    return len;
}

bool HilFeeds_Client::sendPacket(uint8_t *buf, uint16_t len)
{
    if (!client->connected())
        return false;
    return client->write(buf, len) == len;
}
