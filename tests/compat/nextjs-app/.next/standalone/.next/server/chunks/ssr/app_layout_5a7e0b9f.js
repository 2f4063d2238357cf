module.exports=[62925,a=>{"use strict";a.s(["default",()=>c]);var b=a.i(7997);function c({children:a}){return(0,b.jsx)("html",{lang:"en",children:(0,b.jsx)("body",{children:a})})}}];

//# sourceMappingURL=app_layout_5a7e0b9f.js.map